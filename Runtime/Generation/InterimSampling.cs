// INTERIM: stand-ins with the shape of the tok branch's GenerationOptions and Sampler, greedy only, so the
// generator can be built and tested before that branch lands. Deleted when main has the real types.
using OnnxGpt.Model;

namespace OnnxGpt.Generation;

public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 64;

    public bool DoSample { get; init; } = true;

    public double Temperature { get; init; } = 1.0;

    public int TopK { get; init; } = 50;

    public double TopP { get; init; } = 1.0;

    public double RepetitionPenalty { get; init; } = 1.0;

    public ulong? Seed { get; init; }

    public IReadOnlyList<int> StopTokenIds { get; init; } = [];

    public IReadOnlyList<string> StopStrings { get; init; } = [];

    public bool IsGreedy => !DoSample || Temperature == 0;

    public static GenerationOptions FromDefaults(GenerationDefaults defaults) => new()
    {
        MaxNewTokens = defaults.MaxNewTokens, DoSample = defaults.DoSample, Temperature = defaults.Temperature,
        TopK = defaults.TopK, TopP = defaults.TopP, RepetitionPenalty = defaults.RepetitionPenalty,
    };

    public void Validate() => ArgumentOutOfRangeException.ThrowIfNegative(MaxNewTokens);
}

public sealed class Sampler
{
    public Sampler(GenerationOptions options)
    {
        options.Validate();
        Options = options;
    }

    public GenerationOptions Options { get; }

    public static int ScratchLength(int vocabularySize) => 3 * vocabularySize;

    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        float bestValue = float.NegativeInfinity;
        for (int i = 0; i < logits.Length; i++)
        {
            if (logits[i] > bestValue)
            {
                bestValue = logits[i];
                best = i;
            }
        }

        return best;
    }

    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> previousTokens, Span<float> scratch) => ArgMax(logits);
}

using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Constraints;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Tests.Runtime.Constraints;

/// <summary>
/// A stand-in for a model: every step's logits are drawn at random (seeded), so generation wanders over the whole
/// vocabulary, the way an untrained model does, at no cost. Decodes through the real <see cref="Sampler"/>.
/// </summary>
internal static class RandomLogitsModel
{
    /// <summary>Generates up to <paramref name="maxTokens"/> tokens under <paramref name="state"/>; returns the text's bytes and whether it ended complete.</summary>
    public static (byte[] Bytes, bool Complete, int Tokens) Generate(
        ITextTokenizer tokenizer, ConstraintState state, GenerationOptions options, ulong seed, int maxTokens, int endToken = -1,
        Action<ConstraintState, int>? beforeEachToken = null, Action<int>? tokenTaken = null)
    {
        int vocab = tokenizer.VocabularySize;
        var random = new DeterministicRandom(seed ^ 0x9E3779B97F4A7C15UL);
        var sampler = new Sampler(options with { Seed = seed });
        var logits = new float[vocab];
        var scratch = new float[Sampler.ScratchLength(vocab)];
        var bytes = new List<byte>();
        var previous = new List<int>();
        int tokens = 0;
        while (tokens < maxTokens && !state.HasEnded && (state.CanContinue || (state.IsComplete && endToken >= 0)))
        {
            beforeEachToken?.Invoke(state, tokens);
            for (int i = 0; i < vocab; i++)
            {
                logits[i] = (float)(random.NextDouble() * 6 - 3);
            }

            state.Apply(logits);
            int token = sampler.Sample(logits, previous.ToArray(), scratch);
            state.Advance(token);
            tokenTaken?.Invoke(token);
            tokens++;
            previous.Add(token);
            if (token == endToken)
            {
                break;
            }

            bytes.AddRange(tokenizer.GetTokenBytes(token).ToArray());
        }

        return ([.. bytes], state.IsComplete, tokens);
    }
}

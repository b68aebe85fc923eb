using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Constraints;

namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// How to pick tokens. Start from the model's defaults with <see cref="FromDefaults"/> and override with
/// <c>with { ... }</c>; <see cref="Validate"/> checks every limit. Greedy decoding (argmax) happens when
/// <see cref="DoSample"/> is false or <see cref="Temperature"/> is 0; otherwise the order is Hugging Face's:
/// repetition penalty, temperature, top-k, top-p, then a draw from the remaining distribution.
/// </summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate after the prompt; 0 generates nothing.</summary>
    public int MaxNewTokens { get; init; } = 64;

    /// <summary>Sample from the distribution; false means greedy (argmax, lowest id on ties).</summary>
    public bool DoSample { get; init; } = true;

    /// <summary>Logits are divided by this before sampling; 0 means greedy.</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>Keep only the k most likely tokens (ties with the k-th are kept, as in Hugging Face); 0 turns it off.</summary>
    public int TopK { get; init; } = 50;

    /// <summary>Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches this (always at least one token); 1 turns it off.</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Penalty on tokens seen before (prompt and output): positive logits divided by it, negative multiplied; 1 turns it off.</summary>
    public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary>Seed of the sampler's random generator; null picks one at random (see <see cref="Sampler.Seed"/> to reproduce a run).</summary>
    public ulong? Seed { get; init; }

    /// <summary>Generation stops after producing any of these tokens (typically the model's end-of-sequence id); the token is not part of the text.</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];

    /// <summary>Generation stops when the text contains any of these; the text before it is kept, the stop string itself is not.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>
    /// What the generated text must be (a JSON Schema, a grammar, any JSON value), or null for free text. Every row's
    /// tokens are masked before sampling so that the text can always still complete the constraint; the end-of-text
    /// and stop tokens are allowed only once it is complete, and a row finishes with
    /// <see cref="FinishReason.ConstraintComplete"/> when nothing more can follow. Needs a model with a tokenizer.
    /// </summary>
    public OutputConstraint? Constraint { get; init; }

    /// <summary>True when tokens are picked by argmax: <see cref="DoSample"/> is false or <see cref="Temperature"/> is 0.</summary>
    public bool IsGreedy => !DoSample || Temperature == 0;

    /// <summary>Options from a model's <see cref="GenerationDefaults"/> (metadata); override fields with <c>with { ... }</c>.</summary>
    public static GenerationOptions FromDefaults(GenerationDefaults defaults)
    {
        ArgumentNullException.ThrowIfNull(defaults);
        return new GenerationOptions
        {
            MaxNewTokens = defaults.MaxNewTokens,
            DoSample = defaults.DoSample,
            Temperature = defaults.Temperature,
            TopK = defaults.TopK,
            TopP = defaults.TopP,
            RepetitionPenalty = defaults.RepetitionPenalty,
        };
    }

    /// <summary>Checks every option against its limit.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is outside its range; the message names the option, the limit and the value.</exception>
    /// <exception cref="ArgumentException">A stop list is null, or a stop string is empty.</exception>
    public void Validate()
    {
        if (MaxNewTokens < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxNewTokens), MaxNewTokens, $"{nameof(MaxNewTokens)} must be >= 0; found {MaxNewTokens}.");
        }

        if (!(Temperature >= 0) || double.IsPositiveInfinity(Temperature))
        {
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, $"{nameof(Temperature)} must be a finite number >= 0 (0 means greedy); found {Temperature}.");
        }

        if (TopK < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(TopK), TopK, $"{nameof(TopK)} must be >= 0 (0 turns top-k off); found {TopK}.");
        }

        if (!(TopP > 0 && TopP <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(TopP), TopP, $"{nameof(TopP)} must be in (0, 1] (1 turns top-p off); found {TopP}.");
        }

        if (!(RepetitionPenalty > 0) || double.IsPositiveInfinity(RepetitionPenalty))
        {
            throw new ArgumentOutOfRangeException(nameof(RepetitionPenalty), RepetitionPenalty, $"{nameof(RepetitionPenalty)} must be a finite number > 0 (1 turns it off); found {RepetitionPenalty}.");
        }

        if (StopTokenIds is null)
        {
            throw new ArgumentException($"{nameof(StopTokenIds)} must not be null; use an empty list.", nameof(StopTokenIds));
        }

        for (var i = 0; i < StopTokenIds.Count; i++)
        {
            if (StopTokenIds[i] < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(StopTokenIds), StopTokenIds[i], $"{nameof(StopTokenIds)}[{i}] must be a token id >= 0; found {StopTokenIds[i]}.");
            }
        }

        if (StopStrings is null)
        {
            throw new ArgumentException($"{nameof(StopStrings)} must not be null; use an empty list.", nameof(StopStrings));
        }

        for (var i = 0; i < StopStrings.Count; i++)
        {
            if (string.IsNullOrEmpty(StopStrings[i]))
            {
                throw new ArgumentException($"{nameof(StopStrings)}[{i}] is empty; a stop string needs at least one character.", nameof(StopStrings));
            }
        }
    }
}

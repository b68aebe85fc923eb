namespace OnnxGpt.Runtime.Generation;

/// <summary>What one row of a generator produced: see <see cref="Generator.GenerateAll"/>.</summary>
/// <param name="Row">The row (0 for a single sequence).</param>
/// <param name="Ids">The whole sequence: prompt followed by the generated tokens (padding is not included).</param>
/// <param name="PromptLength">How many of <paramref name="Ids"/> came before this generation (the prompt).</param>
/// <param name="Text">The generated text (stop tokens and stop strings left out), or null when the model has no tokenizer.</param>
/// <param name="FinishReason">Why generation stopped.</param>
/// <param name="TimeToFirstToken">From the prompt's <see cref="Generator.Append(System.ReadOnlySpan{int})"/> to the first generated token.</param>
/// <param name="Elapsed">From the prompt's append to the last generated token.</param>
/// <param name="LogProbs">Each generated token's log-probabilities, when <see cref="GenerationOptions.TopLogProbs"/> asked for them; else null.</param>
/// <param name="Score">
/// Beam search: the hypothesis' score, its summed processed log-probabilities divided by length ^ length penalty
/// (see <see cref="GenerationOptions.LengthPenalty"/>); null otherwise.
/// </param>
/// <param name="Prompt">Which prompt of the batch it continues (with several sequences per prompt, rows are prompt-major: row = prompt · k + j).</param>
public sealed record GenerationResult(
    int Row,
    IReadOnlyList<int> Ids,
    int PromptLength,
    string? Text,
    FinishReason FinishReason,
    TimeSpan TimeToFirstToken,
    TimeSpan Elapsed,
    IReadOnlyList<TokenLogProbs>? LogProbs = null,
    double? Score = null,
    int Prompt = 0)
{
    /// <summary>
    /// With a constraint (<see cref="GenerationOptions.Constraint"/>): whether the text completes it (false: it stopped
    /// first, for length or the context, and is incomplete). Null without a constraint.
    /// </summary>
    public bool? ConstraintComplete { get; init; }

    /// <summary>Tokens generated after the prompt.</summary>
    public int NewTokens => Ids.Count - PromptLength;

    /// <summary>The generated tokens.</summary>
    public IReadOnlyList<int> NewIds => Ids.Skip(PromptLength).ToArray();

    /// <summary>Decoding speed after the first token (tokens per second); 0 when fewer than two tokens were generated.</summary>
    public double DecodeTokensPerSecond
    {
        get
        {
            double seconds = (Elapsed - TimeToFirstToken).TotalSeconds;
            return NewTokens > 1 && seconds > 0 ? (NewTokens - 1) / seconds : 0;
        }
    }
}

namespace OnnxGpt.Runtime.Generation;

/// <summary>What speculative decoding did for one sequence (<see cref="Generator.Speculation"/>).</summary>
/// <param name="Rounds">Verifying steps: each fed the last token and the draft's tokens.</param>
/// <param name="PlainSteps">Steps that decoded one token without a draft (none was found, or drafting did not pay).</param>
/// <param name="DraftedTokens">Draft tokens verified.</param>
/// <param name="AcceptedTokens">Draft tokens the model agreed with.</param>
/// <param name="LastDraftLength">k of the last round.</param>
public readonly record struct SpeculationStatistics(long Rounds, long PlainSteps, long DraftedTokens, long AcceptedTokens, int LastDraftLength)
{
    /// <summary>Accepted ÷ drafted tokens (NaN before any round).</summary>
    public double AcceptanceRate => DraftedTokens == 0 ? double.NaN : (double)AcceptedTokens / DraftedTokens;

    /// <summary>Mean draft tokens per round: the k chosen, on average (NaN before any round).</summary>
    public double MeanDraftLength => Rounds == 0 ? double.NaN : (double)DraftedTokens / Rounds;

    /// <summary>Tokens per verifying step: accepted tokens plus the one the model picks itself (NaN before any round).</summary>
    public double TokensPerRound => Rounds == 0 ? double.NaN : (double)(AcceptedTokens + Rounds) / Rounds;
}

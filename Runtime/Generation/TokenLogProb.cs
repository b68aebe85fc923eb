namespace OnnxGpt.Runtime.Generation;

/// <summary>One token and its log-probability (nats) under the raw model distribution.</summary>
/// <param name="TokenId">The token.</param>
/// <param name="LogProb">Its log-probability.</param>
public readonly record struct TokenLogProb(int TokenId, double LogProb);

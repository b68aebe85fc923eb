namespace OnnxGpt.Runtime.Batching;

/// <summary>
/// A snapshot of a <see cref="BatchEngine"/>'s load, cheap to read from any thread: what a load balancer or a
/// placement strategy (one engine per silo, say) needs to send a request where a slot is free.
/// </summary>
/// <param name="Slots">Sequence slots in the engine.</param>
/// <param name="ActiveSequences">Requests holding a slot now (prompt or decoding).</param>
/// <param name="IdleConversations">Finished conversations keeping their slots for reuse (a new request may take them).</param>
/// <param name="QueuedRequests">Requests waiting for a slot.</param>
/// <param name="Steps">Steps run so far: a prompt chunk, or one token for every decoding sequence (one or more runs of the session).</param>
/// <param name="GeneratedTokens">Tokens generated so far, over every request.</param>
/// <param name="FedTokens">Token positions fed to the model so far (prompts not reused, and one per decoded token).</param>
/// <param name="ManagedBytesPerToken">
/// Managed bytes the engine's thread allocated per generated token in steps where no request joined or left (the
/// steady state; with text, each token's piece is one small string); NaN before any such step.
/// </param>
/// <param name="InterruptedRuns">
/// Decoding runs stopped part-way for a joining request (see <see cref="BatchEngineOptions.InterruptDecodingForNewRequests"/>);
/// their rows were fed again after its prompt.
/// </param>
public readonly record struct BatchEngineStatistics(
    int Slots,
    int ActiveSequences,
    int IdleConversations,
    int QueuedRequests,
    long Steps,
    long GeneratedTokens,
    long FedTokens,
    double ManagedBytesPerToken,
    long InterruptedRuns = 0)
{
    /// <summary>Slots a new request can take now without waiting: empty ones and those of idle conversations.</summary>
    public int FreeSlots => Slots - ActiveSequences;
}

namespace OnnxGpt.Orleans.Placement;

/// <summary>
/// The statistic a silo publishes for placement: its batch engine's slots, how many its conversations hold or have
/// reserved, and the engine's own load (<see cref="Runtime.Batching.BatchEngine.GetStatistics"/>).
/// </summary>
/// <param name="Slots">Slots of the silo's engine: the conversations it can hold.</param>
/// <param name="Taken">Slots held by live conversations or reserved for ones being placed.</param>
/// <param name="ActiveSequences">Sequences generating now.</param>
/// <param name="QueuedRequests">Turns waiting for a slot.</param>
/// <param name="GeneratedTokens">Tokens the engine generated so far.</param>
/// <param name="FedTokens">Token positions it was fed so far.</param>
[GenerateSerializer, Immutable, Alias("onnxgpt.SiloSlots")]
public sealed record SiloSlots(
    [property: Id(0)] int Slots,
    [property: Id(1)] int Taken,
    [property: Id(2)] int ActiveSequences,
    [property: Id(3)] int QueuedRequests,
    [property: Id(4)] long GeneratedTokens,
    [property: Id(5)] long FedTokens)
{
    /// <summary>Slots a new conversation can take.</summary>
    public int Free => Slots - Taken;
}

using Microsoft.Extensions.Logging;
using OnnxGpt.Orleans.Hosting;
using Orleans.Concurrency;
using Orleans.Runtime;

namespace OnnxGpt.Orleans.Placement;

/// <summary>The grain service behind <see cref="ISlotService"/>: reads the silo's ledger and engine, never waits.</summary>
[Reentrant]
internal sealed class SlotService(GrainId id, Silo silo, ILoggerFactory loggerFactory, SlotLedger ledger, ConversationEngineHost host)
    : GrainService(id, silo, loggerFactory), ISlotService
{
    public Task<SiloSlots> GetSlotsAsync()
    {
        var engine = host.Engine.GetStatistics();
        return Task.FromResult(new SiloSlots(ledger.Capacity, ledger.Taken, engine.ActiveSequences, engine.QueuedRequests, engine.GeneratedTokens, engine.FedTokens));
    }

    public Task<bool> TryReserveAsync(GrainId conversation) => Task.FromResult(ledger.TryReserve(conversation));
}

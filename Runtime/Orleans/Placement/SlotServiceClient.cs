using Orleans.Runtime.Services;
using Orleans.Services;

namespace OnnxGpt.Orleans.Placement;

/// <summary>Calls the <see cref="ISlotService"/> of a given silo.</summary>
internal interface ISlotServiceClient : IGrainServiceClient<ISlotService>
{
    ISlotService On(SiloAddress silo);
}

/// <inheritdoc cref="ISlotServiceClient"/>
internal sealed class SlotServiceClient(IServiceProvider services) : GrainServiceClient<ISlotService>(services), ISlotServiceClient
{
    public ISlotService On(SiloAddress silo) => GetGrainService(silo);
}

using Orleans.Services;

namespace OnnxGpt.Orleans.Placement;

/// <summary>A silo's conversation slots, one instance per silo (an Orleans grain service), asked by the placement director.</summary>
[Alias("onnxgpt.ISlotService")]
public interface ISlotService : IGrainService
{
    /// <summary>The silo's slots and its engine's load now.</summary>
    [Alias("slots")]
    Task<SiloSlots> GetSlotsAsync();

    /// <summary>Reserves a slot for a conversation about to be activated here; false when every slot is taken.</summary>
    [Alias("reserve")]
    Task<bool> TryReserveAsync(GrainId conversation);
}

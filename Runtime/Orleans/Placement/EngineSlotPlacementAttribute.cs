using Orleans.Placement;

namespace OnnxGpt.Orleans.Placement;

/// <summary>Places a grain class's activations by <see cref="EngineSlotPlacement"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class EngineSlotPlacementAttribute : PlacementAttribute
{
    /// <summary>The attribute.</summary>
    public EngineSlotPlacementAttribute()
        : base(EngineSlotPlacement.Instance)
    {
    }
}

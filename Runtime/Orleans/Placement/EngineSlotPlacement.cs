namespace OnnxGpt.Orleans.Placement;

/// <summary>
/// Orleans placement strategy for conversations: a new conversation goes to a silo whose batch engine has a free
/// slot (the one with the most), and the slot is reserved there before the answer; see
/// <see cref="EngineSlotPlacementDirector"/>. Where an activation lives then never changes until it deactivates:
/// its KV cache is there.
/// </summary>
[Serializable, GenerateSerializer, Immutable, SuppressReferenceTracking, Alias("onnxgpt.EngineSlotPlacement")]
public sealed class EngineSlotPlacement : PlacementStrategy
{
    /// <summary>The one instance.</summary>
    public static EngineSlotPlacement Instance { get; } = new();
}

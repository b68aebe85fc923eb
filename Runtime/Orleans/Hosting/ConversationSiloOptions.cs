using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Providers;

namespace OnnxGpt.Orleans.Hosting;

/// <summary>How a silo serves conversations (<see cref="OnnxGptSiloBuilderExtensions.AddOnnxGptConversations"/>).</summary>
public sealed class ConversationSiloOptions
{
    /// <summary>The model folder to load (a fused export, <c>--graph fused</c>: the batch engine needs it); or set <see cref="Model"/>.</summary>
    public string? ModelPath { get; set; }

    /// <summary>How <see cref="ModelPath"/> is loaded (providers, threads); null: the defaults.</summary>
    public SessionSettings? Session { get; set; }

    /// <summary>A model already loaded, shared with the rest of the process (not owned: the silo does not dispose it); or set <see cref="ModelPath"/>.</summary>
    public GptModel? Model { get; set; }

    /// <summary>
    /// Sequence slots of the silo's batch engine, and so the conversations it holds at once: each live conversation
    /// keeps one (with its KV cache) until it is idle for <see cref="IdleTimeout"/>. Default 8.
    /// </summary>
    public int Slots { get; set; } = 8;

    /// <summary>Tokens one slot holds; 0 (the default) takes the model's context length.</summary>
    public int SlotTokens { get; set; }

    /// <summary>Most prompt tokens a joining turn feeds per step beside the decoding ones. Default 128.</summary>
    public int PrefillChunkTokens { get; set; } = 128;

    /// <summary>A conversation with no turn for this long is deactivated and its slot released (its state stays saved). Default 10 minutes.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>While a turn has no token to send, the grain sends a heartbeat this often (see <see cref="Client.ConversationClientOptions.StallTimeout"/>). Default 1 s.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Silos the placement director asks for their free slots when it places a new conversation: all of them up to this
    /// many, a random sample of this many beyond (then all, if none of the sample has room). Default 8.
    /// </summary>
    public int PlacementCandidates { get; set; } = 8;

    /// <summary>Checks the settings.</summary>
    /// <exception cref="ArgumentException">Neither or both of <see cref="ModelPath"/> and <see cref="Model"/> are set.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A number is out of range; the message names it.</exception>
    public void Validate()
    {
        if ((ModelPath is null) == (Model is null))
        {
            throw new ArgumentException($"{nameof(ConversationSiloOptions)}: set exactly one of {nameof(ModelPath)} and {nameof(Model)}; found {(Model is null ? "neither" : "both")}.");
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Slots, nameof(Slots));
        ArgumentOutOfRangeException.ThrowIfNegative(SlotTokens, nameof(SlotTokens));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(PrefillChunkTokens, nameof(PrefillChunkTokens));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(IdleTimeout, TimeSpan.Zero, nameof(IdleTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(HeartbeatInterval, TimeSpan.Zero, nameof(HeartbeatInterval));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(PlacementCandidates, nameof(PlacementCandidates));
    }
}

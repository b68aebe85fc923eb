using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Orleans.Conversations;

/// <summary>
/// One element of a conversation turn's stream: a token, a heartbeat, or (last) the turn's completion, sent only
/// once the conversation's state with this turn is saved.
/// </summary>
[GenerateSerializer, Immutable, Alias("onnxgpt.ConversationUpdate")]
public sealed record ConversationUpdate
{
    /// <summary>What this update carries.</summary>
    [Id(0)]
    public ConversationUpdateKind Kind { get; init; }

    /// <summary>The token id (<see cref="ConversationUpdateKind.Token"/>).</summary>
    [Id(1)]
    public int TokenId { get; init; }

    /// <summary>The text the token completes (trimmed as a chat reply is on a chat turn; possibly empty).</summary>
    [Id(2)]
    public string Text { get; init; } = string.Empty;

    [Id(3)]
    private int FinishCode { get; init; }

    /// <summary>Why the reply stopped (<see cref="ConversationUpdateKind.Completed"/>).</summary>
    public FinishReason FinishReason
    {
        get => (FinishReason)FinishCode;
        init => FinishCode = (int)value;
    }

    /// <summary>Counts of the turn (<see cref="ConversationUpdateKind.Completed"/>).</summary>
    [Id(4)]
    public ConversationUsage? Usage { get; init; }

    /// <summary>The silo whose engine ran the turn (<see cref="ConversationUpdateKind.Completed"/>).</summary>
    [Id(5)]
    public string Silo { get; init; } = string.Empty;

    /// <summary>Turns the conversation holds with this one (<see cref="ConversationUpdateKind.Completed"/>).</summary>
    [Id(6)]
    public int Turn { get; init; }

    /// <summary>The whole reply's text (<see cref="ConversationUpdateKind.Completed"/>): the assistant message the conversation keeps.</summary>
    [Id(7)]
    public string Reply { get; init; } = string.Empty;
}

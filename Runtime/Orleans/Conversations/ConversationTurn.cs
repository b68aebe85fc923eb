using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Orleans.Conversations;

/// <summary>
/// One turn of a conversation for <see cref="IConversationGrain.ContinueAsync"/>: chat messages (rendered through the
/// model's chat template, the reply trimmed as by the library's chat client) or plain text (appended to the token
/// history as it is), and how tokens are picked.
/// </summary>
[GenerateSerializer, Immutable, Alias("onnxgpt.ConversationTurn")]
public sealed record ConversationTurn
{
    /// <summary>Chat messages (see <see cref="History"/> for which); empty for a text turn.</summary>
    [Id(0)]
    public IReadOnlyList<ConversationMessage> Messages { get; init; } = [];

    /// <summary>Plain text to continue instead of messages (an OpenAI <c>/v1/completions</c> prompt); null for a chat turn.</summary>
    [Id(1)]
    public string? Text { get; init; }

    /// <summary>Whether the messages or text follow what the conversation holds, or are all of it.</summary>
    [Id(2)]
    public TurnHistory History { get; init; } = TurnHistory.Append;

    /// <summary>
    /// How tokens are picked, over the model's generation defaults (the library's one merge,
    /// <see cref="GenerationOverrides.ApplyTo"/>). A seed starts the sampler's stream afresh from it; without one
    /// the conversation's stream goes on from where its last reply stopped (saved with the conversation).
    /// </summary>
    [Id(3)]
    public GenerationOverrides Options { get; init; } = new();

    /// <summary>
    /// The caller's id for this turn. Sent again after an error, a turn whose reply the conversation saved already
    /// (the reply was lost on its way back) is generated again in its place, from the same state, not appended twice.
    /// </summary>
    [Id(4)]
    public string? TurnId { get; init; }

    /// <summary>A system message rendered before the others on this turn (Microsoft.Extensions.AI's <c>Instructions</c>); not kept.</summary>
    [Id(5)]
    public string? Instructions { get; init; }

    /// <summary>Whether this is a text turn (<see cref="Text"/> set) rather than a chat turn.</summary>
    public bool IsText => Text is not null;
}

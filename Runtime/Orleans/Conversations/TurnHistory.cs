namespace OnnxGpt.Orleans.Conversations;

/// <summary>How the messages (or text) of a <see cref="ConversationTurn"/> relate to what the conversation already holds.</summary>
[GenerateSerializer, Alias("onnxgpt.TurnHistory")]
public enum TurnHistory
{
    /// <summary>
    /// They follow the conversation: new messages after the ones it holds (Microsoft.Extensions.AI's conversations
    /// with a <c>ConversationId</c>), or text appended to its token history.
    /// </summary>
    Append,

    /// <summary>
    /// They are the whole conversation (an OpenAI chat request, which carries every message each time): what the
    /// conversation holds and the request shares is kept (its sampling goes on from there), the rest is replaced.
    /// </summary>
    Full,
}

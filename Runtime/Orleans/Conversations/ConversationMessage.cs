using Microsoft.Extensions.AI;

namespace OnnxGpt.Orleans.Conversations;

/// <summary>One chat message of a conversation, as a conversation grain receives and keeps it.</summary>
/// <param name="Role">The role: <c>system</c>, <c>user</c>, <c>assistant</c> or another the chat template renders.</param>
/// <param name="Text">The message's text.</param>
[GenerateSerializer, Immutable, Alias("onnxgpt.ConversationMessage")]
public sealed record ConversationMessage([property: Id(0)] string Role, [property: Id(1)] string Text)
{
    /// <summary>The message as Microsoft.Extensions.AI's <see cref="ChatMessage"/> (what a chat template renders).</summary>
    public ChatMessage ToChatMessage() => new(new ChatRole(Role), Text);

    /// <summary>A <see cref="ChatMessage"/>'s role and text (its other contents are not kept).</summary>
    public static ConversationMessage From(ChatMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return new ConversationMessage(message.Role.Value, message.Text);
    }
}

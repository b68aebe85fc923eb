using Microsoft.Extensions.AI;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Chat;

/// <summary>
/// Turns a conversation into the prompt text a (not chat-tuned) model continues. Implementations must be
/// thread-safe and deterministic: the same messages must give the same text, so a later turn's prompt starts
/// with an earlier turn's and its KV cache is reused. See <see cref="ChatTemplate"/>.
/// </summary>
public interface IChatTemplate
{
    /// <summary>The conversation as one prompt, ending where the assistant's reply begins.</summary>
    string Render(IReadOnlyList<ChatMessage> messages);

    /// <summary>Text that ends the reply when the model writes it (it starts another turn); not part of the reply.</summary>
    IReadOnlyList<string> StopSequences { get; }
}

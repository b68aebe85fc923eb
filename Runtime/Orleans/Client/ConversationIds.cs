using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.AI;

namespace OnnxGpt.Orleans.Client;

/// <summary>
/// Conversation ids for requests that name none: a stable hash of the conversation's start, so every turn of one
/// conversation (each carrying the whole history, as OpenAI clients send it) reaches the same grain, and so the
/// silo holding its cache. Conversations that start alike share a grain (their turns then run one after another,
/// and the cache they share is reused); give an explicit id where that matters.
/// </summary>
public static class ConversationIds
{
    /// <summary>Longest start of a text prompt that is hashed.</summary>
    public const int TextPrefixChars = 256;

    /// <summary>
    /// The id of a chat conversation: a hash of the instructions, the system messages before the first user message,
    /// and the first user message (roles and texts), <c>chat-</c> and 32 hex digits.
    /// </summary>
    public static string ForChat(IEnumerable<ChatMessage> messages, string? instructions = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var start = new StringBuilder();
        Append(start, "instructions", instructions ?? string.Empty);
        foreach (var message in messages)
        {
            Append(start, message.Role.Value, message.Text);
            if (message.Role == ChatRole.User)
            {
                break;
            }
        }

        return "chat-" + Hash(start.ToString());
    }

    /// <summary>The id of a text conversation: a hash of the prompt's first line (at most <see cref="TextPrefixChars"/> characters), <c>text-</c> and 32 hex digits.</summary>
    public static string ForText(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        int end = prompt.IndexOf('\n', StringComparison.Ordinal);
        string line = end < 0 ? prompt : prompt[..end];
        return "text-" + Hash(line.Length > TextPrefixChars ? line[..TextPrefixChars] : line);
    }

    private static void Append(StringBuilder text, string role, string content) =>
        text.Append(role.Length).Append(':').Append(role).Append(content.Length).Append(':').Append(content);

    private static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)).AsSpan(0, 16));
}

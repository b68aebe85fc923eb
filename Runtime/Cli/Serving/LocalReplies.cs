using Microsoft.Extensions.AI;
using OnnxGpt.Runtime.Chat;

namespace OnnxGpt.Cli.Serving;

/// <summary>Replies from the chat client in this process (its batch engine, or a generator per request); conversation ids are not needed: its cache finds shared prefixes itself.</summary>
internal sealed class LocalReplies(OnnxGptChatClient client) : IReplySource
{
    public bool NeedsGate => client.Engine is null;

    public IAsyncEnumerable<ChatResponseUpdate> ChatAsync(IReadOnlyList<ChatMessage> messages, ChatOptions options, string? conversationId, CancellationToken cancellationToken) =>
        client.GetStreamingResponseAsync(messages, options, cancellationToken);

    public IAsyncEnumerable<ChatResponseUpdate> CompleteAsync(CompletionPrompt prompt, ChatOptions options, string? conversationId, CancellationToken cancellationToken) =>
        prompt.Tokens is { } ids
            ? client.CompleteStreamingAsync(ids, options, cancellationToken)
            : client.CompleteStreamingAsync(prompt.Text!, options, cancellationToken);
}

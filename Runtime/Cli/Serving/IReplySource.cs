using Microsoft.Extensions.AI;

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// Where the server's requests generate: the in-process chat client (<see cref="LocalReplies"/>), or the conversation
/// grains of an Orleans cluster (<see cref="ClusterReplies"/>, <c>serve --orleans</c>). The server parses, checks and
/// answers the same way over either.
/// </summary>
internal interface IReplySource
{
    /// <summary>Whether the server's own gate must bound the requests generating at once (no engine of its own bounds them).</summary>
    bool NeedsGate { get; }

    /// <summary>The reply to a chat request (the whole conversation, as OpenAI clients send it).</summary>
    /// <param name="messages">The request's messages.</param>
    /// <param name="options">The request's options.</param>
    /// <param name="conversationId">The request's explicit conversation id (<see cref="ClusterReplies.ConversationHeader"/>), or null.</param>
    /// <param name="cancellationToken">The client went away.</param>
    IAsyncEnumerable<ChatResponseUpdate> ChatAsync(IReadOnlyList<ChatMessage> messages, ChatOptions options, string? conversationId, CancellationToken cancellationToken);

    /// <summary>The continuation of a text prompt.</summary>
    /// <param name="prompt">The request's prompt: text, or token ids.</param>
    /// <param name="options">The request's options.</param>
    /// <param name="conversationId">The request's explicit conversation id, or null.</param>
    /// <param name="cancellationToken">The client went away.</param>
    IAsyncEnumerable<ChatResponseUpdate> CompleteAsync(CompletionPrompt prompt, ChatOptions options, string? conversationId, CancellationToken cancellationToken);
}

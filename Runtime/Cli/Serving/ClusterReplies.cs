using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;
using OnnxGpt.Orleans.Client;
using OnnxGpt.Orleans.Conversations;

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// Replies from the conversation grains of an Orleans cluster (<c>serve --orleans</c>): a request is one turn of the
/// conversation named by its <see cref="ConversationHeader"/> header, or, without one, of the conversation whose id is
/// a stable hash of its start (<see cref="ConversationIds"/>), so every turn of a conversation reaches the silo holding
/// its cache, through whichever server it is sent to. The request carries the whole conversation (history Full), as
/// OpenAI clients send it; the grain reuses what it holds of it. A full cluster answers 503 (<c>server_busy</c>); a
/// silo lost mid-reply ends the reply with a retryable error (<c>conversation_interrupted</c>, 503).
/// </summary>
internal sealed class ClusterReplies(OnnxGptClusterChatClient cluster) : IReplySource
{
    /// <summary>The request header that names a request's conversation explicitly.</summary>
    public const string ConversationHeader = "X-Conversation-Id";

    /// <summary>Longest conversation id accepted.</summary>
    public const int MaxConversationIdLength = 256;

    public bool NeedsGate => false;

    public IAsyncEnumerable<ChatResponseUpdate> ChatAsync(IReadOnlyList<ChatMessage> messages, ChatOptions options, string? conversationId, CancellationToken cancellationToken)
    {
        Refuse(options);
        return Guard(cluster.StreamAsync(conversationId ?? ConversationIds.ForChat(messages, options.Instructions),
            OnnxGptClusterChatClient.ChatTurn(messages, options, TurnHistory.Full), cancellationToken: cancellationToken), cancellationToken);
    }

    public IAsyncEnumerable<ChatResponseUpdate> CompleteAsync(CompletionPrompt prompt, ChatOptions options, string? conversationId, CancellationToken cancellationToken)
    {
        Refuse(options);
        string text = prompt.Text ?? throw OpenAiError.BadRequest(
            "a prompt of token ids is not supported through an Orleans cluster (serve --orleans) yet: send it as text.", "prompt", "unsupported_value");
        return Guard(cluster.StreamAsync(conversationId ?? ConversationIds.ForText(text),
            OnnxGptClusterChatClient.TextTurn(text, options, TurnHistory.Full), cancellationToken: cancellationToken), cancellationToken);
    }

    /// <summary>A request's conversation id from <see cref="ConversationHeader"/>, or null; a blank or over-long one is a 400.</summary>
    public static string? ConversationId(HttpRequest request)
    {
        if (!request.Headers.TryGetValue(ConversationHeader, out var values))
        {
            return null;
        }

        string id = values.ToString();
        if (values.Count != 1 || string.IsNullOrWhiteSpace(id) || id.Length > MaxConversationIdLength)
        {
            throw OpenAiError.BadRequest(
                $"the {ConversationHeader} header must be one non-blank conversation id of at most {MaxConversationIdLength} characters; found {values.Count} value(s), '{(id.Length > 40 ? id[..40] + "..." : id)}'.",
                code: "invalid_conversation_id");
        }

        return id;
    }

    /// <summary>What the conversation grains do not take (yet): a response format's constraint.</summary>
    private static void Refuse(ChatOptions options)
    {
        if (options.ResponseFormat is ChatResponseFormatJson)
        {
            throw OpenAiError.BadRequest("response_format is not supported through an Orleans cluster (serve --orleans) yet; serve the model on one machine for structured output.",
                "response_format", "unsupported_value");
        }
    }

    /// <summary>The cluster's errors as OpenAI errors (503 for the retryable ones), the rest as they are.</summary>
    private static async IAsyncEnumerable<ChatResponseUpdate> Guard(IAsyncEnumerable<ChatResponseUpdate> updates, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var stream = updates.GetAsyncEnumerator(cancellationToken);
        while (true)
        {
            try
            {
                if (!await stream.MoveNextAsync().ConfigureAwait(false))
                {
                    yield break;
                }
            }
            catch (ConversationCapacityException e)
            {
                throw new OpenAiError(StatusCodes.Status503ServiceUnavailable, e.Message, code: "server_busy", type: OpenAiError.ServerError);
            }
            catch (ConversationInterruptedException e)
            {
                throw new OpenAiError(StatusCodes.Status503ServiceUnavailable, e.Message, code: "conversation_interrupted", type: OpenAiError.ServerError);
            }

            yield return stream.Current;
        }
    }
}

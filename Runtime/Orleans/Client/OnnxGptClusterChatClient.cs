using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using OnnxGpt.Orleans.Conversations;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Orleans.Client;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="IChatClient"/> over a cluster of silos serving OnnxGpt conversations, so an
/// application's code does not change when it moves from one machine (<see cref="OnnxGptChatClient"/>) to many. Each
/// request is a turn of a conversation grain:
/// <list type="bullet">
/// <item>with <see cref="ChatOptions.ConversationId"/>, the conversation of that id, and the messages are the new ones
/// after what it holds (the service keeps the history, as Microsoft.Extensions.AI's stateful services do; responses
/// carry the id back);</item>
/// <item>without, the conversation whose id is a stable hash of its start (<see cref="ConversationIds.ForChat"/>), and
/// the messages are the whole conversation, as OpenAI clients send them.</item>
/// </list>
/// Options map as the library's chat client maps them (<see cref="OnnxGptChatClient.Overrides"/>), applied on the
/// silo to the model's defaults; the reply is trimmed as there. A silo's loss mid-reply ends the stream with
/// <see cref="ConversationInterruptedException"/> (nothing saved; send it again). Thread-safe.
/// </summary>
public sealed class OnnxGptClusterChatClient : IChatClient
{
    private readonly ConversationClient _conversations;

    /// <summary>A chat client over <paramref name="grains"/>.</summary>
    public OnnxGptClusterChatClient(IGrainFactory grains, ClusterChatClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(grains);
        Options = options ?? new ClusterChatClientOptions();
        _conversations = new ConversationClient(grains, Options.Conversations);
        Metadata = new ChatClientMetadata(OnnxGptChatClient.ProviderName + "-orleans", null, Options.ModelId);
    }

    /// <summary>How the client was set up.</summary>
    public ClusterChatClientOptions Options { get; }

    /// <summary>The conversation client the requests go through.</summary>
    public ConversationClient Conversations => _conversations;

    /// <summary>Provider name (<c>onnxgpt-orleans</c>) and model id.</summary>
    public ChatClientMetadata Metadata { get; }

    /// <inheritdoc/>
    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

    /// <inheritdoc/>
    public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var list = messages.ToList();
        string? id = options?.ConversationId;
        var turn = ChatTurn(list, options, id is null ? TurnHistory.Full : TurnHistory.Append);
        return StreamAsync(id ?? ConversationIds.ForChat(list, options?.Instructions), turn, echoConversationId: id is not null, cancellationToken);
    }

    /// <summary>A chat turn: the messages' roles and texts, the options' overrides and stop sequences, the instructions.</summary>
    public static ConversationTurn ChatTurn(IEnumerable<ChatMessage> messages, ChatOptions? options, TurnHistory history)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return new ConversationTurn
        {
            Messages = [.. messages.Select(ConversationMessage.From)],
            History = history,
            Options = Overrides(options),
            Instructions = options?.Instructions,
        };
    }

    /// <summary>A text turn: <paramref name="text"/> continued as it is, without a template or trimming (an OpenAI <c>/v1/completions</c> prompt).</summary>
    public static ConversationTurn TextTurn(string text, ChatOptions? options, TurnHistory history)
    {
        ArgumentNullException.ThrowIfNull(text);
        return new ConversationTurn { Text = text, History = history, Options = Overrides(options) };
    }

    /// <summary>
    /// Runs <paramref name="turn"/> on conversation <paramref name="conversationId"/> as Microsoft.Extensions.AI updates: the
    /// text as it comes, then an update with the finish reason and the usage (reused prompt tokens as cached ones).
    /// </summary>
    public async IAsyncEnumerable<ChatResponseUpdate> StreamAsync(string conversationId, ConversationTurn turn, bool echoConversationId = false,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string responseId = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow;
        await foreach (var update in _conversations.ContinueAsync(conversationId, turn, cancellationToken).ConfigureAwait(false))
        {
            if (update.Kind == ConversationUpdateKind.Token)
            {
                if (update.Text.Length > 0)
                {
                    yield return Update([new TextContent(update.Text)]);
                }

                continue;
            }

            var usage = update.Usage!;
            var last = Update([new UsageContent(new UsageDetails
            {
                InputTokenCount = usage.PromptTokens,
                OutputTokenCount = usage.GeneratedTokens,
                TotalTokenCount = usage.PromptTokens + usage.GeneratedTokens,
                CachedInputTokenCount = usage.ReusedTokens,
            })]);
            last.FinishReason = update.FinishReason switch
            {
                FinishReason.MaxNewTokens or FinishReason.ContextFull => ChatFinishReason.Length,
                _ => ChatFinishReason.Stop,
            };
            last.AdditionalProperties = new AdditionalPropertiesDictionary { ["silo"] = update.Silo, ["turn"] = update.Turn, ["fed_tokens"] = usage.FedTokens };
            yield return last;
        }

        ChatResponseUpdate Update(IList<AIContent> contents) => new(ChatRole.Assistant, contents)
        {
            ResponseId = responseId,
            MessageId = responseId,
            CreatedAt = created,
            ModelId = Options.ModelId,
            ConversationId = echoConversationId ? conversationId : null,
        };
    }

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null)
        {
            return null;
        }

        return serviceType == typeof(ChatClientMetadata) ? Metadata
            : serviceType.IsInstanceOfType(_conversations) ? _conversations
            : serviceType.IsInstanceOfType(this) ? this
            : null;
    }

    /// <summary>Nothing to release: the grain factory belongs to the host.</summary>
    public void Dispose()
    {
    }

    private static GenerationOverrides Overrides(ChatOptions? options) => options is null ? new GenerationOverrides()
        : OnnxGptChatClient.Overrides(options) with { StopStrings = [.. options.StopSequences?.Where(s => !string.IsNullOrEmpty(s)) ?? []] };
}

using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Runtime.Chat;

/// <summary>How an <see cref="OnnxGptChatClient"/> renders prompts, picks tokens by default and caches conversations.</summary>
public sealed record OnnxGptChatClientOptions
{
    /// <summary>The prompt format; null: the one in the model's metadata, else <see cref="ChatTemplate.Default"/>.</summary>
    public IChatTemplate? ChatTemplate { get; init; }

    /// <summary>
    /// How tokens are picked when a request's <c>ChatOptions</c> say nothing; null: the model's generation defaults.
    /// The template's stop sequences are added to <see cref="GenerationOptions.StopStrings"/>.
    /// </summary>
    public GenerationOptions? DefaultGenerationOptions { get; init; }

    /// <summary>
    /// Finished conversations kept with their KV caches, so a request that continues one runs only its new tokens
    /// (least recently used dropped first). Each holds a cache of up to 2 · layers · context · width floats
    /// (75 MB for GPT-2 small at 1024 tokens). 0 turns reuse off. Default 4. With the batch engine, finished
    /// conversations stay in their slots until a new request needs one, at most this many.
    /// </summary>
    public int MaxCachedConversations { get; init; } = 4;

    /// <summary>
    /// Sequences decoded together by the client's <see cref="Batching.BatchEngine"/> when the model's graph writes its
    /// cache in place (the fused graph): concurrent requests then share each step's run of the model, and finished
    /// conversations keep their slots for reuse (up to <see cref="MaxCachedConversations"/> of them). Its cache, of
    /// this many sequences of the whole context, is allocated when the client is created. 0, or a portable graph:
    /// each request runs its own generator. Default 4.
    /// </summary>
    public int BatchSlots { get; init; } = 4;

    /// <summary>With the batch engine: most prompt tokens a joining request feeds per step beside the decoding ones (see <see cref="Batching.BatchEngineOptions.PrefillChunkTokens"/>). Default 128.</summary>
    public int PrefillChunkTokens { get; init; } = 128;

    /// <summary>With the batch engine: requests that may wait for a slot; beyond that a request is refused with <see cref="Batching.BatchEngineBusyException"/>. Default 64.</summary>
    public int MaxQueuedRequests { get; init; } = 64;

    /// <summary>
    /// When the conversation does not fit the context with room for the reply (the reply may take up to half the
    /// context), drop its oldest messages, system messages and the last message excepted, until it does. Off by
    /// default: a prompt that leaves no room for a reply is refused with an <see cref="OnnxGptException"/>.
    /// </summary>
    public bool DropOldMessages { get; init; }

    /// <summary>The model id the client reports (<c>ChatClientMetadata.DefaultModelId</c>); null: the model folder's name.</summary>
    public string? ModelId { get; init; }

    /// <summary>Checks the limits.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="MaxCachedConversations"/> is negative.</exception>
    public void Validate()
    {
        if (MaxCachedConversations < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxCachedConversations), MaxCachedConversations,
                $"{nameof(MaxCachedConversations)} must be >= 0 (0 turns conversation reuse off); found {MaxCachedConversations}.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(BatchSlots, nameof(BatchSlots));
        ArgumentOutOfRangeException.ThrowIfNegative(MaxQueuedRequests, nameof(MaxQueuedRequests));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(PrefillChunkTokens, nameof(PrefillChunkTokens));
        DefaultGenerationOptions?.Validate();
    }
}

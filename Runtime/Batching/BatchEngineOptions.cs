namespace OnnxGpt.Runtime.Batching;

/// <summary>How a <see cref="BatchEngine"/> is laid out and scheduled.</summary>
public sealed record BatchEngineOptions
{
    /// <summary>
    /// Sequences decoded together: the rows of the one in-place cache, each of <see cref="SlotTokens"/> tokens
    /// (its memory is <see cref="BatchEngine.CacheBytes"/>). Default 4.
    /// </summary>
    public int Slots { get; init; } = 4;

    /// <summary>Tokens one slot holds, prompt and reply; 0 (the default) takes the model's context length.</summary>
    public int SlotTokens { get; init; }

    /// <summary>Requests that may wait for a slot; a request beyond that is refused with <see cref="BatchEngineBusyException"/>. Default 64.</summary>
    public int MaxQueuedRequests { get; init; } = 64;

    /// <summary>
    /// Most prompt tokens one sequence feeds in one step while others decode: a long prompt is fed in chunks between
    /// decoding steps, so it holds the others up by one chunk at a time, not by its whole length. Default 128.
    /// </summary>
    public int PrefillChunkTokens { get; init; } = 128;

    /// <summary>
    /// Finished conversations that keep their slots (and caches) until a new request needs the slot; a request whose
    /// prompt starts with most of one continues from it. 0 turns reuse off. Default: every slot.
    /// </summary>
    public int MaxIdleConversations { get; init; } = int.MaxValue;

    /// <summary>
    /// When a request arrives while the engine runs a decoding step and a slot is free for it, stop that run at its
    /// next operator, run the newcomer's prompt chunk, then run the decoding rows again: its first token then waits for
    /// one operator instead of the rest of the step. The decoding rows lose the part of the step already done (half a
    /// step on average, once per arriving request), and never twice in a row: the run after an interrupted one is
    /// not interrupted. Their tokens are the same either way. Default on.
    /// </summary>
    public bool InterruptDecodingForNewRequests { get; init; } = true;

    /// <summary>Stop a sequence when it produces the model's <c>eos_token_id</c> (the default).</summary>
    public bool StopAtEndOfSequence { get; init; } = true;

    /// <summary>Decode generated tokens to text (the default, when the model has a tokenizer): streamed pieces and stop strings need it.</summary>
    public bool DecodeText { get; init; } = true;

    /// <summary>Checks the limits.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A limit is out of range; the message names it.</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Slots, nameof(Slots));
        ArgumentOutOfRangeException.ThrowIfNegative(SlotTokens, nameof(SlotTokens));
        ArgumentOutOfRangeException.ThrowIfNegative(MaxQueuedRequests, nameof(MaxQueuedRequests));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(PrefillChunkTokens, nameof(PrefillChunkTokens));
        ArgumentOutOfRangeException.ThrowIfNegative(MaxIdleConversations, nameof(MaxIdleConversations));
    }
}

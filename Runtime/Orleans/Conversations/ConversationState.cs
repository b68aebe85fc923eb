namespace OnnxGpt.Orleans.Conversations;

/// <summary>
/// What a conversation grain saves after every turn (and only then): the history a new silo rebuilds the
/// conversation's cache from, the sampler's random state its next reply goes on from, and the point before the last
/// turn, so the last turn can be run again in its own place.
/// </summary>
[GenerateSerializer, Alias("onnxgpt.ConversationState")]
internal sealed class ConversationState
{
    /// <summary>A chat conversation's messages, replies included (empty for a text conversation).</summary>
    [Id(0)]
    public List<ConversationMessage> Messages { get; set; } = [];

    /// <summary>The token history: the last turn's whole prompt and its reply, as the engine ran them.</summary>
    [Id(1)]
    public int[] Tokens { get; set; } = [];

    /// <summary>The sampler's random state after the last reply, or null before any.</summary>
    [Id(2)]
    public ulong[]? RandomState { get; set; }

    /// <summary>Turns saved.</summary>
    [Id(3)]
    public int Turns { get; set; }

    /// <summary>Whether the conversation is plain text (its turns continue the token history) rather than chat.</summary>
    [Id(4)]
    public bool IsText { get; set; }

    /// <summary>The caller's id of the last turn, if it gave one.</summary>
    [Id(5)]
    public string? LastTurnId { get; set; }

    /// <summary>Messages before the last turn (a prefix of <see cref="Messages"/>).</summary>
    [Id(6)]
    public int MessagesBeforeLast { get; set; }

    /// <summary>Tokens before the last turn's input, for a text conversation (a prefix of <see cref="Tokens"/>).</summary>
    [Id(7)]
    public int TokensBeforeLast { get; set; }

    /// <summary>The random state before the last turn.</summary>
    [Id(8)]
    public ulong[]? RandomStateBeforeLast { get; set; }
}

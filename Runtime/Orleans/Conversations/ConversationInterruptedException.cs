namespace OnnxGpt.Orleans.Conversations;

/// <summary>
/// A turn's reply broke off: the silo serving the conversation stopped answering (it died, or the network to it
/// did). Nothing of the turn was saved, so sending the same turn again is safe: the conversation is reactivated on
/// another silo from its saved history and gives the reply it would have given.
/// </summary>
[GenerateSerializer, Alias("onnxgpt.ConversationInterruptedException")]
public sealed class ConversationInterruptedException : Exception
{
    /// <summary>An interrupted turn, with a message that says what broke and to retry.</summary>
    public ConversationInterruptedException(string message)
        : base(message)
    {
    }

    /// <summary>An interrupted turn.</summary>
    public ConversationInterruptedException()
        : this("the conversation's reply broke off and nothing of the turn was saved; send the turn again.")
    {
    }

    /// <summary>An interrupted turn, with a message and the exception behind it.</summary>
    public ConversationInterruptedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Tokens of the reply that had arrived before it broke off (they are not part of the conversation).</summary>
    [Id(0)]
    public int TokensReceived { get; init; }
}

namespace OnnxGpt.Orleans.Conversations;

/// <summary>
/// Every slot of every silo the placement director asked is held by a live conversation, so a new one has nowhere
/// to go: try again later (HTTP 503), when idle conversations have been deactivated or silos added.
/// </summary>
[GenerateSerializer, Alias("onnxgpt.ConversationCapacityException")]
public sealed class ConversationCapacityException : Exception
{
    /// <summary>A full cluster, with a message that gives its silos and slots.</summary>
    public ConversationCapacityException(string message)
        : base(message)
    {
    }

    /// <summary>A full cluster.</summary>
    public ConversationCapacityException()
        : this("every conversation slot of the cluster is taken; try again later.")
    {
    }

    /// <summary>A full cluster, with a message and the exception behind it.</summary>
    public ConversationCapacityException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

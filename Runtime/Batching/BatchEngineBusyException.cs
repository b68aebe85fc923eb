namespace OnnxGpt.Runtime.Batching;

/// <summary>Every slot of a <see cref="BatchEngine"/> is busy and its queue is full: try again later (HTTP 503).</summary>
public sealed class BatchEngineBusyException : Exception
{
    /// <summary>A busy engine, with a message that gives its slots and queue.</summary>
    public BatchEngineBusyException(string message)
        : base(message)
    {
    }

    /// <summary>A busy engine.</summary>
    public BatchEngineBusyException()
        : this("the batch engine is busy: every slot is generating and the queue is full; try again later.")
    {
    }

    /// <summary>A busy engine, with a message and the exception behind it.</summary>
    public BatchEngineBusyException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

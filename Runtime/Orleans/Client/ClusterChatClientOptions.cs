namespace OnnxGpt.Orleans.Client;

/// <summary>How an <see cref="OnnxGptClusterChatClient"/> reaches the cluster and names itself.</summary>
public sealed record ClusterChatClientOptions
{
    /// <summary>The model id the client reports in its metadata and responses. Default <c>onnxgpt</c>.</summary>
    public string ModelId { get; init; } = "onnxgpt";

    /// <summary>How silo losses are told and retried (<see cref="ConversationClient"/>).</summary>
    public ConversationClientOptions Conversations { get; init; } = new();
}

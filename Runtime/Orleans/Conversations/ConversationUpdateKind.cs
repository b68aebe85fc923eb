namespace OnnxGpt.Orleans.Conversations;

/// <summary>What a <see cref="ConversationUpdate"/> carries.</summary>
[GenerateSerializer, Alias("onnxgpt.ConversationUpdateKind")]
public enum ConversationUpdateKind
{
    /// <summary>A generated token and the text it completes.</summary>
    Token,

    /// <summary>Nothing yet: the grain is alive and working (a long prompt, a busy engine); lets a caller tell a slow reply from a lost silo.</summary>
    Heartbeat,

    /// <summary>The turn is over and saved: the finish reason and the counts. Nothing of a turn counts until this arrives.</summary>
    Completed,
}

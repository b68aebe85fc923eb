namespace OnnxGpt.Orleans.Conversations;

/// <summary>Where a conversation lives and what it holds: for tests, dashboards and operators.</summary>
/// <param name="Silo">The silo of the activation that answered.</param>
/// <param name="Turns">Turns saved.</param>
/// <param name="Messages">The chat messages saved (replies included); empty for a text conversation.</param>
/// <param name="Tokens">The token history: the last turn's prompt and reply, as the engine ran them.</param>
/// <param name="HasRandomState">Whether a sampler's random state is saved for the next turn to go on from.</param>
[GenerateSerializer, Immutable, Alias("onnxgpt.ConversationSnapshot")]
public sealed record ConversationSnapshot(
    [property: Id(0)] string Silo,
    [property: Id(1)] int Turns,
    [property: Id(2)] IReadOnlyList<ConversationMessage> Messages,
    [property: Id(3)] IReadOnlyList<int> Tokens,
    [property: Id(4)] bool HasRandomState);

namespace OnnxGpt.Orleans.Conversations;

/// <summary>
/// A conversation, keyed by its id: its history is grain state (saved through Orleans' persistence after every turn,
/// never in the middle of one), its live sequence sits in the batch engine of the silo it was placed on, where it
/// stays (its KV cache is there) until it has been idle for <see cref="Hosting.ConversationSiloOptions.IdleTimeout"/>.
/// Call it through <see cref="Client.ConversationClient"/>, which tells a lost silo from a slow reply.
/// </summary>
[Alias("onnxgpt.IConversationGrain")]
public interface IConversationGrain : IGrainWithStringKey
{
    /// <summary>
    /// Adds one turn and streams the reply: tokens as the engine generates them, heartbeats while there is none yet,
    /// then <see cref="ConversationUpdateKind.Completed"/> once the turn is saved. A stream that ends without it saved
    /// nothing: send the turn again. Turns of one conversation run one after another.
    /// </summary>
    /// <exception cref="OnnxGptException">The turn cannot run: a text the tokenizer cannot encode, a prompt that leaves no room in the context.</exception>
    [Alias("continue")]
    IAsyncEnumerable<ConversationUpdate> ContinueAsync(ConversationTurn turn, CancellationToken cancellationToken = default);

    /// <summary>Where the conversation lives and what it holds.</summary>
    [Alias("snapshot")]
    Task<ConversationSnapshot> GetSnapshotAsync();

    /// <summary>Forgets the conversation: its saved state is cleared and its slot released.</summary>
    [Alias("clear")]
    Task ClearAsync();
}

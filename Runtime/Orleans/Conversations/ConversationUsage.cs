namespace OnnxGpt.Orleans.Conversations;

/// <summary>What one turn cost: the prompt, what of it the silo's KV cache already held, and what the model was fed.</summary>
/// <param name="PromptTokens">Tokens of the turn's whole prompt (the conversation so far and the new messages or text).</param>
/// <param name="ReusedTokens">Prompt tokens found in the cache and not fed again (0 on a silo that never saw the conversation).</param>
/// <param name="FedTokens">Token positions fed to the model for this turn: the prompt tokens not reused, and one per decoding step.</param>
/// <param name="GeneratedTokens">Tokens generated.</param>
[GenerateSerializer, Immutable, Alias("onnxgpt.ConversationUsage")]
public sealed record ConversationUsage(
    [property: Id(0)] int PromptTokens,
    [property: Id(1)] int ReusedTokens,
    [property: Id(2)] long FedTokens,
    [property: Id(3)] int GeneratedTokens);

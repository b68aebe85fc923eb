namespace OnnxGpt.Runtime.Generation;

/// <summary>What to do when a prompt does not fit the model's context.</summary>
public enum PromptTruncation
{
    /// <summary>Refuse: an <see cref="OnnxGptException"/> gives the prompt length and the context length.</summary>
    None,

    /// <summary>
    /// Drop the oldest tokens. The prompt keeps <c>context - min(max_new_tokens, context / 2)</c> tokens, so there
    /// is room to generate; the sequence is recomputed from its new start (positions restart at 0).
    /// </summary>
    Left,
}

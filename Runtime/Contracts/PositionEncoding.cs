namespace OnnxGpt.Contracts;

/// <summary>How a token's position enters the network.</summary>
public enum PositionEncoding
{
    /// <summary>A learned position embedding added to the token embedding (GPT-2's <c>wpe</c>).</summary>
    Learned,

    /// <summary>
    /// Rotary position embeddings (RoPE): each query and key head is rotated by angles position · θ^(−2i/D).
    /// Which dimensions form a rotated pair is <see cref="GptConfig.RotaryInterleaved"/>.
    /// </summary>
    Rotary,
}

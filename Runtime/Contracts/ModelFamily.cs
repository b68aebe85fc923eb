namespace OnnxGpt.Contracts;

/// <summary>
/// Which checkpoint family a <see cref="GptConfig"/> belongs to: it decides the tensor names and layouts
/// (Hugging Face GPT-2's or Llama's) and the spelling of <c>config.json</c>. What the network computes is decided
/// by the config's choices (<see cref="GptConfig.Norm"/>, <see cref="GptConfig.Positions"/>, <see cref="GptConfig.Mlp"/>,
/// <see cref="GptConfig.KeyValueHeads"/>, ...), each of which the family fixes or allows.
/// </summary>
public enum ModelFamily
{
    /// <summary>GPT-2: LayerNorm, learned positions, a plain MLP, one key/value head per query head.</summary>
    Gpt2,

    /// <summary>Llama (TinyLlama, SmolLM, the tinyllamas): RMSNorm, rotary positions, a SwiGLU MLP, grouped-query attention.</summary>
    Llama,
}

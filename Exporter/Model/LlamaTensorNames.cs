namespace OnnxGpt.Exporter.Model;

/// <summary>
/// Tensor names of the Llama family: Hugging Face <c>LlamaForCausalLM</c>'s, so a checkpoint maps by identity.
/// Projections keep <c>nn.Linear</c>'s layout <c>[out_features, in_features]</c>; q_proj and k_proj rows are in the
/// order <see cref="OnnxGpt.Contracts.GptConfig.RotaryInterleaved"/> says.
/// </summary>
public static class LlamaTensorNames
{
    /// <summary>Token embedding, (V, C).</summary>
    public const string Embedding = "model.embed_tokens.weight";

    /// <summary>The final RMSNorm's weight, (C).</summary>
    public const string FinalNorm = "model.norm.weight";

    /// <summary>The output head, (V, C), when it is not tied to the token embedding.</summary>
    public const string LmHead = "lm_head.weight";

    /// <summary>The prefix of block i's tensors: <c>model.layers.{i}.</c>.</summary>
    public static string Block(int i) => $"model.layers.{i}.";

    /// <summary>Block i's RMSNorm before attention, (C).</summary>
    public static string InputNorm(int i) => Block(i) + "input_layernorm.weight";

    /// <summary>Block i's RMSNorm before the MLP, (C).</summary>
    public static string PostAttentionNorm(int i) => Block(i) + "post_attention_layernorm.weight";

    /// <summary>Block i's attention projection <paramref name="which"/> (<c>q_proj</c>, <c>k_proj</c>, <c>v_proj</c>, <c>o_proj</c>).</summary>
    public static string Attention(int i, string which) => Block(i) + "self_attn." + which + ".weight";

    /// <summary>Block i's MLP projection <paramref name="which"/> (<c>gate_proj</c>, <c>up_proj</c>, <c>down_proj</c>).</summary>
    public static string Mlp(int i, string which) => Block(i) + "mlp." + which + ".weight";
}

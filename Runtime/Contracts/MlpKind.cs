namespace OnnxGpt.Contracts;

/// <summary>The feed-forward block.</summary>
public enum MlpKind
{
    /// <summary><c>c_proj(act(c_fc(x)))</c>, GPT-2's.</summary>
    Plain,

    /// <summary>Gated (SwiGLU with SiLU): <c>down(act(gate(x)) * up(x))</c>, Llama's.</summary>
    Gated,
}

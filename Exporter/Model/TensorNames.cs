namespace OnnxGpt.Exporter.Model;

/// <summary>Canonical tensor names: Hugging Face GPT-2's, with the <c>transformer.</c> prefix.</summary>
public static class TensorNames
{
    /// <summary>Token embedding, (V, C).</summary>
    public const string Wte = "transformer.wte.weight";
    /// <summary>Position embedding, (context, C).</summary>
    public const string Wpe = "transformer.wpe.weight";
    /// <summary>The final layer norm's prefix (<c>.weight</c>, <c>.bias</c>).</summary>
    public const string LnF = "transformer.ln_f";
    /// <summary>The output head, (V, C), when it is not tied to the token embedding.</summary>
    public const string LmHead = "lm_head.weight";

    /// <summary>The prefix of block i's tensors: <c>transformer.h.{i}.</c>.</summary>
    public static string Block(int i) => $"transformer.h.{i}.";
}

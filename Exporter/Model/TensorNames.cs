namespace OnnxGpt.Model;

/// <summary>Canonical tensor names: Hugging Face GPT-2's, with the <c>transformer.</c> prefix.</summary>
public static class TensorNames
{
    public const string Wte = "transformer.wte.weight";
    public const string Wpe = "transformer.wpe.weight";
    public const string LnF = "transformer.ln_f";
    public const string LmHead = "lm_head.weight";

    /// <summary>The prefix of block i's tensors: <c>transformer.h.{i}.</c>.</summary>
    public static string Block(int i) => $"transformer.h.{i}.";
}

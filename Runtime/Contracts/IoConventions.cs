namespace OnnxGpt.Contracts;

/// <summary>Names of the graph I/O conventions a host understands.</summary>
public static class IoConventions
{
    /// <summary>
    /// Hugging Face Optimum / ONNX Runtime GenAI / transformers.js: <c>input_ids</c>, <c>attention_mask</c>,
    /// <c>position_ids</c>, <c>past_key_values.{i}.key|value</c> (B, H, P, D) → <c>logits</c>, <c>present.{i}.key|value</c>.
    /// </summary>
    public const string Optimum = "optimum";

    /// <summary>ONNX Runtime's older GPT-2 convention: int32 ids, stacked <c>past_{i}</c>/<c>present_{i}</c> (2, B, H, P, D).</summary>
    public const string OrtGpt2 = "ort-gpt2";
}

namespace OnnxGpt.Contracts;

/// <summary>
/// The operators of OnnxGpt's own ONNX domain, which the exporter may write and the runtime registers with ONNX
/// Runtime (as custom operators implemented in C#) for every session it creates.
/// </summary>
public static class OnnxGptOperators
{
    /// <summary>The operator domain, opset version <see cref="DomainVersion"/>.</summary>
    public const string Domain = "com.onnxgpt";

    /// <summary>The domain's only opset version so far.</summary>
    public const int DomainVersion = 1;

    /// <summary>
    /// Causal self-attention over a float16 key/value cache written in place, for an otherwise float32 graph. Inputs:
    /// the packed q|k|v (B, T, 3·H·D) float32; past key and past value (B, H, capacity, D) float16; <c>seqlens_k</c> (B)
    /// int32, each row's tokens after the step minus one; <c>total_sequence_length</c>, an int32 scalar (the mask's
    /// width). Attribute <c>num_heads</c>. Outputs: (B, T, H·D) float32, and the present key and value of the past's
    /// shape, meant to be bound to the past's own buffers. A row's new tokens go to cache positions past .. past + n − 1,
    /// where, as for <c>com.microsoft.GroupQueryAttention</c>, a step whose T equals the mask's width is a first prompt
    /// (past 0, n = seqlens_k + 1, the rest of the row padding) and any other step has past = seqlens_k + 1 − T and
    /// n = T. Every key and value is read back as float16, the new ones too, so a step of several tokens gives what
    /// as many one-token steps give.
    /// </summary>
    public const string Float16CacheAttention = "Float16CacheAttention";
}

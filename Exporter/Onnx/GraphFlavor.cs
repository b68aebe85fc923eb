namespace OnnxGpt.Exporter.Onnx;

/// <summary>Which operators the graph uses.</summary>
public enum GraphFlavor
{
    /// <summary>Standard ai.onnx operators only: any execution provider, the clearest Netron picture.</summary>
    Portable,

    /// <summary>
    /// ONNX Runtime's contrib operators where they are faster: <c>GroupQueryAttention</c> with past and present sharing
    /// one buffer (the KV cache is written in place), <c>MatMulNBits</c> for quantized weights, and a
    /// <c>num_logits_to_keep</c> input so generation computes the output projection for the last position only.
    /// </summary>
    Fused,
}

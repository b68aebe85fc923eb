namespace OnnxGpt.Exporter.Onnx;

/// <summary>The floating-point type of the weights, the activations and the KV cache.</summary>
public enum WeightPrecision
{
    /// <summary>float32 everywhere.</summary>
    Float32,

    /// <summary>
    /// float16 weights, activations and KV cache (half the bytes per token, for GPUs above all); the logits output
    /// stays float32.
    /// </summary>
    Float16,
}

using OnnxGpt.Contracts;

namespace OnnxGpt.Exporter.Onnx;

/// <summary>Weight-only block quantization of the projection matrices (fused graph only).</summary>
public enum WeightQuantization
{
    /// <summary>Float weights.</summary>
    None,

    /// <summary>8-bit, symmetric, one float scale per block.</summary>
    Int8,

    /// <summary>4-bit, symmetric, one float scale per block (as llama.cpp's Q4_0).</summary>
    Int4,
}

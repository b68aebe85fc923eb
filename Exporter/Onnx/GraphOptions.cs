namespace OnnxGpt.Onnx;

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

/// <summary>Weight-only block quantization of the projection matrices (fused graph only).</summary>
public enum WeightQuantization
{
    None,

    /// <summary>8-bit, symmetric, one float scale per block.</summary>
    Int8,

    /// <summary>4-bit, symmetric, one float scale per block (as llama.cpp's Q4_0).</summary>
    Int4,
}

/// <summary>How <see cref="GptGraph"/> builds the graph.</summary>
public sealed record GraphOptions
{
    public GraphFlavor Flavor { get; init; } = GraphFlavor.Portable;

    public WeightQuantization Quantization { get; init; } = WeightQuantization.None;

    /// <summary>Values per quantization block along the input dimension.</summary>
    public int BlockSize { get; init; } = 32;

    public static GraphOptions Portable { get; } = new();

    public GraphOptions Validate()
    {
        if (Quantization != WeightQuantization.None && Flavor != GraphFlavor.Fused)
        {
            throw new OnnxGptException($"quantization {Quantization} needs the fused graph (MatMulNBits); the portable graph uses standard operators only.");
        }

        if (BlockSize < 16 || (BlockSize & (BlockSize - 1)) != 0)
        {
            throw new OnnxGptException($"quantization block size must be a power of two, at least 16; found {BlockSize}.");
        }

        return this;
    }
}

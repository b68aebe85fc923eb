using OnnxGpt.Contracts;

namespace OnnxGpt.Exporter.Onnx;

/// <summary>How <see cref="GptGraph"/> builds the graph.</summary>
public sealed record GraphOptions
{
    /// <summary>Standard operators only, or ONNX Runtime's fused ones.</summary>
    public GraphFlavor Flavor { get; init; } = GraphFlavor.Portable;

    /// <summary>Block quantization of the weight matrices (fused graph only).</summary>
    public WeightQuantization Quantization { get; init; } = WeightQuantization.None;

    /// <summary>float32 or float16 (<c>--dtype fp32|fp16</c>).</summary>
    public WeightPrecision Precision { get; init; } = WeightPrecision.Float32;

    /// <summary>Values per quantization block along the input dimension.</summary>
    public int BlockSize { get; init; } = 32;

    /// <summary>
    /// The I/O convention (portable graph only): <see cref="IoConventions.Optimum"/> (the default: int64 ids,
    /// <c>past_key_values.{i}.key|value</c>) or <see cref="IoConventions.OrtGpt2"/> (int32 ids and mask, one stacked
    /// <c>past_{i}</c> / <c>present_{i}</c> of shape (2, B, H, P, D) per layer), for hosts that expect it.
    /// </summary>
    public string IoConvention { get; init; } = IoConventions.Optimum;

    /// <summary>Take <c>position_ids</c> as an input (the default); false computes them in the graph from
    /// <c>attention_mask</c> (cumulative sum minus one), as some Optimum exports do. Portable graph only.</summary>
    public bool PositionIdsInput { get; init; } = true;

    /// <summary>
    /// Add a merged decoder's boolean <c>use_cache_branch</c> input (shape [1]): false takes the past as empty, true
    /// uses it. Portable graph only.
    /// </summary>
    public bool UseCacheBranchInput { get; init; }

    /// <summary>
    /// Build the portable Llama graph from operators older than opset 23: RMSNorm, the rotary embedding and
    /// attention decomposed into opset-21 operators, for runtimes without opset 23. By default the portable Llama
    /// graph uses opset 23's <c>RMSNormalization</c>, <c>RotaryEmbedding</c> and <c>Attention</c> (IR 11), which ONNX
    /// Runtime 1.31 runs correctly and, measured, faster (docs/performance.md). GPT-2 graphs are opset 21 either way.
    /// </summary>
    public bool DecomposedLlamaOperators { get; init; }

    /// <summary>
    /// Keep the KV cache in float16 for a float32 graph (<c>--kv-cache fp16</c>): half the bytes that attention reads
    /// per token at long context. Fused graph, float32 weights or quantized ones, GPT-2 family. Attention is then OnnxGpt's
    /// own operator (<see cref="OnnxGptOperators.Float16CacheAttention"/>), which ONNX Runtime runs once the runtime has
    /// registered it: OnnxGpt's runtime does so for every session, other hosts cannot load the model.
    /// </summary>
    public bool Float16Cache { get; init; }

    /// <summary>The default: the portable graph with float weights.</summary>
    public static GraphOptions Portable { get; } = new();

    /// <summary>Checks that the options go together; returns this for chaining.</summary>
    public GraphOptions Validate()
    {
        if (IoConvention is not (IoConventions.Optimum or IoConventions.OrtGpt2))
        {
            throw new OnnxGptException($"graph I/O convention '{IoConvention}' is unknown; expected '{IoConventions.Optimum}' or '{IoConventions.OrtGpt2}'.");
        }

        if (Flavor == GraphFlavor.Fused && (IoConvention != IoConventions.Optimum || !PositionIdsInput || UseCacheBranchInput))
        {
            throw new OnnxGptException("the fused graph has the Optimum I/O convention only (with position_ids, without use_cache_branch).");
        }

        if (DecomposedLlamaOperators && Flavor != GraphFlavor.Portable)
        {
            throw new OnnxGptException("decomposed Llama operators are a choice of the portable graph; the fused graph uses ONNX Runtime's contrib operators.");
        }

        if (Quantization != WeightQuantization.None && Flavor != GraphFlavor.Fused)
        {
            throw new OnnxGptException($"quantization {Quantization} needs the fused graph (MatMulNBits); the portable graph uses standard operators only.");
        }

        if (Precision == WeightPrecision.Float16 && Quantization != WeightQuantization.None)
        {
            throw new OnnxGptException($"--dtype fp16 applies to float weights; quantization {Quantization} keeps float32 activations. Choose one.");
        }

        if (Float16Cache && (Flavor != GraphFlavor.Fused || Precision != WeightPrecision.Float32))
        {
            throw new OnnxGptException("a float16 KV cache (--kv-cache fp16) is an option of the fused graph with float32 activations (--graph fused, --dtype fp32); with --dtype fp16 the cache is float16 already.");
        }

        if (BlockSize < 16 || (BlockSize & (BlockSize - 1)) != 0)
        {
            throw new OnnxGptException($"quantization block size must be a power of two, at least 16; found {BlockSize}.");
        }

        return this;
    }
}

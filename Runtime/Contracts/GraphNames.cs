using System.Globalization;

namespace OnnxGpt.Contracts;

/// <summary>
/// The names of a decoder graph's inputs, outputs and symbolic dimensions, as the exporter writes them and the runtime
/// binds them: the convention Hugging Face Optimum, ONNX Runtime GenAI and transformers.js share
/// (<see cref="IoConventions.Optimum"/>), and ONNX Runtime's older stacked GPT-2 cache (<see cref="IoConventions.OrtGpt2"/>).
/// </summary>
public static class GraphNames
{
    /// <summary>Input: token ids, (B, T).</summary>
    public const string InputIds = "input_ids";

    /// <summary>Input: 1 for tokens to attend to, 0 for padding, (B, P + T).</summary>
    public const string AttentionMask = "attention_mask";

    /// <summary>Input: each new token's position, (B, T).</summary>
    public const string PositionIds = "position_ids";

    /// <summary>Input of Optimum's merged decoders: whether the past inputs hold a cache.</summary>
    public const string UseCacheBranch = "use_cache_branch";

    /// <summary>Input of OnnxGpt's fused graph: how many final positions get logits (0 = all, the default).</summary>
    public const string LogitsToKeep = "num_logits_to_keep";

    /// <summary>Output: next-token logits, (B, T, V).</summary>
    public const string Logits = "logits";

    /// <summary>Symbolic dimension: the batch, B.</summary>
    public const string BatchDim = "batch_size";

    /// <summary>Symbolic dimension: the new tokens, T.</summary>
    public const string SequenceDim = "sequence_length";

    /// <summary>Symbolic dimension: the tokens already in the cache, P.</summary>
    public const string PastSequenceDim = "past_sequence_length";

    /// <summary>Symbolic dimension: past and new tokens together, P + T.</summary>
    public const string TotalSequenceDim = "total_sequence_length";

    /// <summary>The past keys of one layer, (B, H, P, D): <c>past_key_values.{layer}.key</c>.</summary>
    public static string PastKey(int layer) => Indexed(PastKeyPattern, layer);

    /// <summary>The past values of one layer, (B, H, P, D): <c>past_key_values.{layer}.value</c>.</summary>
    public static string PastValue(int layer) => Indexed(PastValuePattern, layer);

    /// <summary>The present keys of one layer, (B, H, P + T, D): <c>present.{layer}.key</c>.</summary>
    public static string PresentKey(int layer) => Indexed(PresentKeyPattern, layer);

    /// <summary>The present values of one layer, (B, H, P + T, D): <c>present.{layer}.value</c>.</summary>
    public static string PresentValue(int layer) => Indexed(PresentValuePattern, layer);

    /// <summary>ONNX Runtime's stacked GPT-2 past of one layer, (2, B, H, P, D): <c>past_{layer}</c>.</summary>
    public static string StackedPast(int layer) => Indexed(StackedPastPattern, layer);

    /// <summary>ONNX Runtime's stacked GPT-2 present of one layer, (2, B, H, P + T, D): <c>present_{layer}</c>.</summary>
    public static string StackedPresent(int layer) => Indexed(StackedPresentPattern, layer);

    /// <summary>The past-key name with the layer as <c>%d</c>, as ONNX Runtime GenAI's <c>genai_config.json</c> writes it.</summary>
    public const string PastKeyPattern = "past_key_values.%d.key";

    /// <summary>The past-value name pattern (<c>%d</c> = layer).</summary>
    public const string PastValuePattern = "past_key_values.%d.value";

    /// <summary>The present-key name pattern (<c>%d</c> = layer).</summary>
    public const string PresentKeyPattern = "present.%d.key";

    /// <summary>The present-value name pattern (<c>%d</c> = layer).</summary>
    public const string PresentValuePattern = "present.%d.value";

    /// <summary>The stacked past name pattern (<c>%d</c> = layer).</summary>
    public const string StackedPastPattern = "past_%d";

    /// <summary>The stacked present name pattern (<c>%d</c> = layer).</summary>
    public const string StackedPresentPattern = "present_%d";

    /// <summary>A name pattern with its <c>%d</c> replaced by <paramref name="layer"/>.</summary>
    public static string Indexed(string pattern, int layer) =>
        pattern.Replace("%d", layer.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
}

using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Model;

/// <summary>
/// The names a decoder graph's inputs and outputs go by. The defaults are the convention OnnxGpt, Hugging Face Optimum
/// and transformers.js share (<see cref="GraphNames"/>); ONNX Runtime GenAI's <c>genai_config.json</c> may name them
/// otherwise (<c>model.decoder.inputs</c> / <c>outputs</c>), and those names are the ones bound. Layer-indexed names
/// are patterns with <c>%d</c> for the layer, as GenAI writes them.
/// </summary>
/// <param name="InputIds">The token ids input.</param>
/// <param name="AttentionMask">The attention mask input (optional in the graph).</param>
/// <param name="PositionIds">The position ids input (optional in the graph).</param>
/// <param name="Logits">The logits output.</param>
/// <param name="PastKey">Past keys, one (B, H, P, D) input per layer.</param>
/// <param name="PastValue">Past values, one (B, H, P, D) input per layer.</param>
/// <param name="PresentKey">Present keys, one output per layer.</param>
/// <param name="PresentValue">Present values, one output per layer.</param>
/// <param name="Past">Keys and values stacked, one (2, B, H, P, D) input per layer (GenAI's <c>past_names</c>).</param>
/// <param name="Present">Keys and values stacked, one output per layer (GenAI's <c>present_names</c>).</param>
/// <param name="Declared">The names come from a file that declares them (a GenAI config), not from the convention.</param>
internal sealed record GraphIoNames(
    string InputIds,
    string AttentionMask,
    string PositionIds,
    string Logits,
    string PastKey,
    string PastValue,
    string PresentKey,
    string PresentValue,
    string Past,
    string Present,
    bool Declared = false)
{
    /// <summary>The shared convention's names; stacked caches as ONNX Runtime's GPT-2 tools name them.</summary>
    public static GraphIoNames Default { get; } = new(
        GraphNames.InputIds, GraphNames.AttentionMask, GraphNames.PositionIds, GraphNames.Logits,
        GraphNames.PastKeyPattern, GraphNames.PastValuePattern, GraphNames.PresentKeyPattern, GraphNames.PresentValuePattern,
        GraphNames.StackedPastPattern, GraphNames.StackedPresentPattern);

    /// <summary>
    /// Whether the cache is stacked: only when a config declares <c>past_names</c> (or, without one, when the graph
    /// has ONNX Runtime GPT-2's <c>past_0</c>; <see cref="ModelSignature"/> decides that).
    /// </summary>
    public bool DeclaresStackedCache { get; init; }
}

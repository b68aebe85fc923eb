using OnnxGpt.Model;

namespace OnnxGpt.Onnx;

/// <summary>
/// Variants of the graph's inputs and outputs, for hosts (and tests of hosts) that expect another convention.
/// The defaults give the Hugging Face Optimum convention every exported model uses; the computation is the same.
/// </summary>
public sealed record GptGraphOptions
{
    public static GptGraphOptions Default { get; } = new();

    /// <summary>
    /// <see cref="IoConventions.Optimum"/> (int64 ids, <c>past_key_values.{i}.key|value</c>) or
    /// <see cref="IoConventions.OrtGpt2"/> (int32 ids and mask, one stacked <c>past_{i}</c> / <c>present_{i}</c>
    /// of shape (2, B, H, P, D) per layer).
    /// </summary>
    public string IoConvention { get; init; } = IoConventions.Optimum;

    /// <summary>Take <c>position_ids</c> as an input (the default); false computes them from <c>attention_mask</c>
    /// (cumulative sum of the mask minus one, as some Optimum exports do).</summary>
    public bool PositionIdsInput { get; init; } = true;

    /// <summary>
    /// Add a merged decoder's boolean <c>use_cache_branch</c> input (shape [1]): false ignores the past inputs
    /// (their length is taken as 0), true uses them.
    /// </summary>
    public bool UseCacheBranchInput { get; init; }

    internal void Validate()
    {
        if (IoConvention is not (IoConventions.Optimum or IoConventions.OrtGpt2))
        {
            throw new ArgumentException(
                $"graph I/O convention '{IoConvention}' is unknown; expected '{IoConventions.Optimum}' or '{IoConventions.OrtGpt2}'.", nameof(IoConvention));
        }
    }
}

namespace OnnxGpt.Contracts;

/// <summary>The normalisation before attention, before the MLP and at the end.</summary>
public enum NormKind
{
    /// <summary>LayerNorm: (x − mean) / √(var + ε) · weight (+ bias).</summary>
    LayerNorm,

    /// <summary>RMSNorm: x / √(mean(x²) + ε) · weight, no mean and no bias.</summary>
    RmsNorm,
}

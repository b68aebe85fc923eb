namespace OnnxGpt.Runtime.Providers;

/// <summary>Apple Core ML (macOS and iOS builds of ONNX Runtime).</summary>
public sealed record CoreMlProvider : ExecutionProviderOptions
{
    /// <inheritdoc/>
    public override string Name => "coreml";

    /// <inheritdoc/>
    public override string OrtName => "CoreMLExecutionProvider";

    /// <inheritdoc/>
    public override string ToString() => Name;
}

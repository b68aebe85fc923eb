namespace OnnxGpt.Providers;

/// <summary>Apple Core ML (macOS and iOS builds of ONNX Runtime).</summary>
public sealed record CoreMlProvider : ExecutionProviderOptions
{
    public override string Name => "coreml";

    public override string OrtName => "CoreMLExecutionProvider";

    public override string ToString() => Name;
}

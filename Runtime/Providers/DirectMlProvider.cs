namespace OnnxGpt.Providers;

/// <summary>DirectML on Windows (needs the Microsoft.ML.OnnxRuntime.DirectML package).</summary>
/// <param name="DeviceId">The adapter's index.</param>
public sealed record DirectMlProvider(int DeviceId = 0) : ExecutionProviderOptions
{
    public override string Name => "directml";

    public override string OrtName => "DmlExecutionProvider";

    public override string ToString() => $"{Name}:{DeviceId}";
}

namespace OnnxGpt.Runtime.Providers;

/// <summary>DirectML on Windows (needs the Microsoft.ML.OnnxRuntime.DirectML package).</summary>
/// <param name="DeviceId">The adapter's index.</param>
public sealed record DirectMlProvider(int DeviceId = 0) : ExecutionProviderOptions
{
    /// <inheritdoc/>
    public override string Name => "directml";

    /// <inheritdoc/>
    public override string OrtName => "DmlExecutionProvider";

    /// <inheritdoc/>
    public override string ToString() => $"{Name}:{DeviceId}";
}

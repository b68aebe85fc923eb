namespace OnnxGpt.Runtime.Providers;

/// <summary>NVIDIA TensorRT (needs the Microsoft.ML.OnnxRuntime.Gpu package and TensorRT libraries); list CUDA after it for the nodes TensorRT does not take.</summary>
/// <param name="DeviceId">The GPU's index.</param>
public sealed record TensorRtProvider(int DeviceId = 0) : ExecutionProviderOptions
{
    /// <inheritdoc/>
    public override string Name => "tensorrt";

    /// <inheritdoc/>
    public override string OrtName => "TensorrtExecutionProvider";

    /// <inheritdoc/>
    public override string ToString() => $"{Name}:{DeviceId}";
}

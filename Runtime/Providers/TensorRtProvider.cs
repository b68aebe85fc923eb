namespace OnnxGpt.Providers;

/// <summary>NVIDIA TensorRT (needs the Microsoft.ML.OnnxRuntime.Gpu package and TensorRT libraries); list CUDA after it for the nodes TensorRT does not take.</summary>
/// <param name="DeviceId">The GPU's index.</param>
public sealed record TensorRtProvider(int DeviceId = 0) : ExecutionProviderOptions
{
    public override string Name => "tensorrt";

    public override string OrtName => "TensorrtExecutionProvider";

    public override string ToString() => $"{Name}:{DeviceId}";
}

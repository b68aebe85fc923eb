namespace OnnxGpt.Runtime.Providers;

/// <summary>NVIDIA CUDA (needs the Microsoft.ML.OnnxRuntime.Gpu package, a CUDA driver and cuDNN).</summary>
/// <param name="DeviceId">The GPU's index.</param>
public sealed record CudaProvider(int DeviceId = 0) : ExecutionProviderOptions
{
    /// <inheritdoc/>
    public override string Name => "cuda";

    /// <inheritdoc/>
    public override string OrtName => "CUDAExecutionProvider";

    /// <inheritdoc/>
    public override string ToString() => $"{Name}:{DeviceId}";
}

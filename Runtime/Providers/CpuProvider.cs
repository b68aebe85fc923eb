namespace OnnxGpt.Runtime.Providers;

/// <summary>
/// ONNX Runtime's CPU provider, always present and always the fallback after any other. Thread counts are
/// session-wide in ONNX Runtime, so they apply whichever provider runs a node; 0 lets ONNX Runtime choose.
/// </summary>
/// <param name="IntraOpThreads">Threads used inside one operator (0: ONNX Runtime's default, one per physical core).</param>
/// <param name="InterOpThreads">Threads used to run independent operators in parallel (0: ONNX Runtime's default).</param>
public sealed record CpuProvider(int IntraOpThreads = 0, int InterOpThreads = 0) : ExecutionProviderOptions
{
    /// <inheritdoc/>
    public override string Name => "cpu";

    /// <inheritdoc/>
    public override string OrtName => "CPUExecutionProvider";

    /// <inheritdoc/>
    public override string ToString() => IntraOpThreads == 0 && InterOpThreads == 0
        ? Name
        : $"{Name} (intra-op threads {IntraOpThreads}, inter-op threads {InterOpThreads})";
}

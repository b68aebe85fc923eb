using Microsoft.ML.OnnxRuntime;

namespace OnnxGpt.Providers;

/// <summary>How to set up an ONNX Runtime session: providers in order of preference, CPU fallback, graph optimisation.</summary>
public sealed record SessionSettings
{
    /// <summary>
    /// Providers in order of preference; ONNX Runtime gives each node to the first that can run it. CPU is always
    /// the last resort whether listed or not; if listed, it must come last.
    /// </summary>
    public IReadOnlyList<ExecutionProviderOptions> Providers { get; init; } = [new CpuProvider()];

    /// <summary>
    /// When a requested provider is missing from this ONNX Runtime build (or fails to start), skip it with a
    /// logged warning instead of failing. Off by default: asking for a GPU and silently getting a CPU hides problems.
    /// </summary>
    public bool AllowCpuFallback { get; init; }

    /// <summary>ONNX Runtime's graph optimisation level.</summary>
    public GraphOptimizationLevel OptimizationLevel { get; init; } = GraphOptimizationLevel.ORT_ENABLE_ALL;

    /// <summary>Where ONNX Runtime writes the optimised graph (for inspection in Netron); null writes nothing.</summary>
    public string? OptimizedModelPath { get; init; }
}

using Microsoft.ML.OnnxRuntime;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Providers;

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

    /// <summary>
    /// The least severe message ONNX Runtime's session writes to the console. Error by default, as ONNX Runtime GenAI
    /// does: loading a fused export otherwise prints a warning on every load that its <c>num_logits_to_keep</c> input
    /// has a default value (harmless, and what lets GenAI run the file without feeding it). Set
    /// <see cref="OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING"/> to see ONNX Runtime's warnings, such as graph nodes an
    /// execution provider could not take (the CLI: <c>--ort-warnings</c>).
    /// </summary>
    public OrtLoggingLevel OnnxRuntimeLogLevel { get; init; } = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR;

    /// <summary>Where ONNX Runtime writes the optimised graph (for inspection in Netron); null writes nothing.</summary>
    public string? OptimizedModelPath { get; init; }

    /// <summary>
    /// Turns on ONNX Runtime's profiler: every run and every kernel it executes is timed, and the events are written
    /// as Chrome trace JSON to <c>{prefix}_{date}_{time}.json</c> when the session is disposed (the prefix may start
    /// with a folder). Null (the default) profiles nothing; profiling adds a few microseconds to every kernel.
    /// </summary>
    public string? ProfileOutputPrefix { get; init; }

    /// <summary>
    /// Let the intra-op threads spin between operators (ONNX Runtime's default, true): the next operator starts at once,
    /// but an idle session's threads keep a core busy for a while. False makes them sleep: set it for a session that
    /// runs in turns with another in the same process (a speculative decoding draft), so neither takes the other's cores.
    /// </summary>
    public bool AllowSpinning { get; init; } = true;
}

using Microsoft.ML.OnnxRuntime;

namespace OnnxGpt.Runtime.Providers;

/// <summary>
/// Session options ready for <c>new InferenceSession(path, prepared.Options)</c>, and the providers they hold.
/// Owns the native options: dispose it once the session is created (or when the session goes).
/// </summary>
public sealed class PreparedSessionOptions : IDisposable
{
    internal PreparedSessionOptions(SessionOptions options, IReadOnlyList<ExecutionProviderOptions> providers)
    {
        Options = options;
        Providers = providers;
    }

    /// <summary>The session options, with the providers appended.</summary>
    public SessionOptions Options { get; }

    /// <summary>The providers registered, in order, ending with the CPU provider (ONNX Runtime's fallback).</summary>
    public IReadOnlyList<ExecutionProviderOptions> Providers { get; }

    /// <summary>Releases the session options.</summary>
    public void Dispose() => Options.Dispose();
}

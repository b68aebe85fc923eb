using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Providers;

/// <summary>Turns <see cref="SessionSettings"/> into ONNX Runtime <see cref="SessionOptions"/>.</summary>
public static class SessionOptionsFactory
{
    /// <summary>
    /// Registers OnnxGpt's own operators (domain <c>com.onnxgpt</c>: the attention of an export with a float16 cache)
    /// with <paramref name="options"/>, for an application that creates its own <see cref="InferenceSession"/> for such a
    /// model. Sessions made through <see cref="Create(SessionSettings, ILogger)"/> have them already.
    /// </summary>
    public static void AddOnnxGptOperators(SessionOptions options) => Native.CustomOperators.AddTo(options);

    /// <summary>The provider names this ONNX Runtime build has (<c>CPUExecutionProvider</c>, ...).</summary>
    public static IReadOnlyList<string> AvailableProviders() => OrtEnv.Instance().GetAvailableProviders();

    /// <summary>
    /// Session options with the requested providers registered in order and CPU last. A provider this ONNX Runtime
    /// build lacks, or one that fails to start, is an error listing the available ones, unless
    /// <see cref="SessionSettings.AllowCpuFallback"/> is set: then it is skipped with a warning on <paramref name="logger"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The provider list is empty, has duplicates, puts CPU before another provider, or has a negative device id or thread count.</exception>
    /// <exception cref="OnnxGptException">A provider is unavailable and fallback is off.</exception>
    public static PreparedSessionOptions Create(SessionSettings settings, ILogger logger) =>
        Create(settings, logger, AvailableProviders(), Append);

    /// <summary>The same, with the available providers and the registration step supplied (tests simulate builds with them).</summary>
    internal static PreparedSessionOptions Create(
        SessionSettings settings,
        ILogger logger,
        IReadOnlyCollection<string> availableProviders,
        Action<SessionOptions, ExecutionProviderOptions> append)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentNullException.ThrowIfNull(availableProviders);
        var requested = settings.Providers ?? throw new ArgumentException("SessionSettings.Providers is null; expected at least one provider.", nameof(settings));
        CheckList(requested);

        var cpu = requested.OfType<CpuProvider>().SingleOrDefault() ?? new CpuProvider();
        var options = new SessionOptions();
        try
        {
            options.GraphOptimizationLevel = settings.OptimizationLevel;
            options.LogSeverityLevel = settings.OnnxRuntimeLogLevel;
            options.IntraOpNumThreads = cpu.IntraOpThreads;
            options.InterOpNumThreads = cpu.InterOpThreads;
            if (cpu.InterOpThreads > 1)
            {
                options.ExecutionMode = ExecutionMode.ORT_PARALLEL; // Inter-op threads only work in parallel mode.
            }

            if (!settings.AllowSpinning)
            {
                options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
            }

            if (settings.OptimizedModelPath is { } optimized)
            {
                options.OptimizedModelFilePath = optimized;
            }

            if (settings.ProfileOutputPrefix is { } profile)
            {
                // The prefix first: enabling hands ONNX Runtime the prefix set at that moment.
                options.ProfileOutputPathPrefix = profile;
                options.EnableProfiling = true;
            }

            // OnnxGpt's own operators (a float16-cache export's attention); a model without them does not notice.
            AddOnnxGptOperators(options);
            var applied = new List<ExecutionProviderOptions>(requested.Count + 1);
            foreach (var provider in requested)
            {
                if (provider is CpuProvider)
                {
                    continue;
                }

                if (!availableProviders.Contains(provider.OrtName))
                {
                    Unavailable(provider, $"this ONNX Runtime build does not include {provider.OrtName}", availableProviders, settings, logger, null);
                    continue;
                }

                try
                {
                    append(options, provider);
                    applied.Add(provider);
                }
                catch (OnnxRuntimeException e)
                {
                    Unavailable(provider, $"{provider.OrtName} failed to start ({e.Message})", availableProviders, settings, logger, e);
                }
            }

            applied.Add(cpu);
            return new PreparedSessionOptions(options, applied);
        }
        catch
        {
            options.Dispose();
            throw;
        }
    }

    private static void CheckList(IReadOnlyList<ExecutionProviderOptions> providers)
    {
        if (providers.Count == 0)
        {
            throw new ArgumentException("SessionSettings.Providers is empty; expected at least one provider (cpu, cuda, ...).", nameof(SessionSettings.Providers));
        }

        var names = new HashSet<string>();
        for (var i = 0; i < providers.Count; i++)
        {
            var provider = providers[i] ?? throw new ArgumentException($"SessionSettings.Providers[{i}] is null.", nameof(SessionSettings.Providers));
            if (!names.Add(provider.Name))
            {
                throw new ArgumentException($"Execution provider '{provider.Name}' is listed twice in ({string.Join(", ", providers)}); expected each once.", nameof(SessionSettings.Providers));
            }

            if (provider is CpuProvider && i != providers.Count - 1)
            {
                throw new ArgumentException(
                    $"Execution provider 'cpu' is at position {i + 1} of {providers.Count} ({string.Join(", ", providers)}); it must come last, as ONNX Runtime always tries it last.",
                    nameof(SessionSettings.Providers));
            }

            var (value, what) = provider switch
            {
                CpuProvider c when c.IntraOpThreads < 0 => (c.IntraOpThreads, "intra-op thread count"),
                CpuProvider c when c.InterOpThreads < 0 => (c.InterOpThreads, "inter-op thread count"),
                CudaProvider { DeviceId: < 0 } g => (g.DeviceId, "device id"),
                TensorRtProvider { DeviceId: < 0 } g => (g.DeviceId, "device id"),
                DirectMlProvider { DeviceId: < 0 } g => (g.DeviceId, "device id"),
                _ => (0, null),
            };
            if (what is not null)
            {
                throw new ArgumentOutOfRangeException(nameof(SessionSettings.Providers), value, $"Execution provider '{provider.Name}': the {what} must be >= 0; found {value}.");
            }
        }
    }

    private static void Unavailable(
        ExecutionProviderOptions provider,
        string reason,
        IReadOnlyCollection<string> available,
        SessionSettings settings,
        ILogger logger,
        Exception? inner)
    {
        var list = string.Join(", ", available);
        if (!settings.AllowCpuFallback)
        {
            var message = $"Execution provider '{provider}' cannot be used: {reason}. Available providers: {list}. " +
                          $"{Hint(provider)}, or allow CPU fallback.";
            throw inner is null ? new OnnxGptException(message) : new OnnxGptException(message, inner);
        }

        logger.LogWarning(
            "Execution provider {Provider} cannot be used: {Reason}. Available providers: {Available}. Falling back to the next provider (CPU last).",
            provider.ToString(), reason, list);
    }

    private static string Hint(ExecutionProviderOptions provider) => provider switch
    {
        CudaProvider or TensorRtProvider => "Use the Microsoft.ML.OnnxRuntime.Gpu package on a machine with an NVIDIA driver, CUDA and cuDNN (and TensorRT for tensorrt)",
        DirectMlProvider => "Use the Microsoft.ML.OnnxRuntime.DirectML package on Windows",
        CoreMlProvider => "Use ONNX Runtime on macOS or iOS",
        _ => "Pick a provider from the available list",
    };

    private static void Append(SessionOptions options, ExecutionProviderOptions provider)
    {
        switch (provider)
        {
            case CudaProvider cuda:
                options.AppendExecutionProvider_CUDA(cuda.DeviceId);
                break;
            case TensorRtProvider tensorRt:
                options.AppendExecutionProvider_Tensorrt(tensorRt.DeviceId);
                break;
            case CoreMlProvider:
                options.AppendExecutionProvider_CoreML(CoreMLFlags.COREML_FLAG_USE_NONE);
                break;
            case DirectMlProvider directMl:
                // DirectML needs sequential execution without memory patterns.
                options.EnableMemoryPattern = false;
                options.ExecutionMode = ExecutionMode.ORT_SEQUENTIAL;
                options.AppendExecutionProvider_DML(directMl.DeviceId);
                break;
            default:
                throw new ArgumentException($"Execution provider '{provider.Name}' has no registration step.", nameof(provider));
        }
    }
}

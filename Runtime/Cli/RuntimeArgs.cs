using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Providers;

namespace OnnxGpt.Cli;

/// <summary>Options every command that runs a model shares: execution providers, threads, token id lists.</summary>
internal static class RuntimeArgs
{
    public const string FallbackFlag = "allow-cpu-fallback";

    public const string OrtWarningsFlag = "ort-warnings";

    public const string SessionUsage = """
          --provider LIST    execution providers in order of preference: cpu, cuda[:DEVICE], tensorrt[:DEVICE],
                             coreml, directml[:DEVICE] (comma-separated; default cpu)
          --threads N        ONNX Runtime intra-op threads (default: one per physical core)
          --allow-cpu-fallback  run on the CPU, with a warning, when a requested provider is not available
          --ort-warnings     print ONNX Runtime's own warnings too (by default only its errors)
        """;

    /// <summary>Reads --provider, --threads and --allow-cpu-fallback.</summary>
    public static SessionSettings ReadSession(CliArgs args)
    {
        string? providers = args.Option("provider");
        int? threads = args.Int("threads");
        bool fallback = args.Flag(FallbackFlag);
        if (threads is < 0)
        {
            throw new CliUsageException($"--threads must be 0 (ONNX Runtime's choice) or more, not {threads}.");
        }

        List<ExecutionProviderOptions> list;
        try
        {
            list = providers is null ? [new CpuProvider()] : [.. ExecutionProviderOptions.ParseList(providers)];
        }
        catch (ArgumentException e)
        {
            throw new CliUsageException($"--provider: {e.Message}");
        }

        if (threads is { } n)
        {
            int at = list.FindIndex(p => p is CpuProvider);
            var cpu = at >= 0 ? (CpuProvider)list[at] with { IntraOpThreads = n } : new CpuProvider(n);
            if (at >= 0)
            {
                list[at] = cpu;
            }
            else
            {
                list.Add(cpu);
            }
        }

        return new SessionSettings
        {
            Providers = list,
            AllowCpuFallback = fallback,
            OnnxRuntimeLogLevel = args.Flag(OrtWarningsFlag) ? OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING : OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
    }

    /// <summary>Loads a model; provider warnings go to <paramref name="stderr"/>.</summary>
    public static GptModel Load(string path, SessionSettings settings, TextWriter stderr)
    {
        try
        {
            return GptModel.Load(path, settings, new WriterLogger(stderr));
        }
        catch (ArgumentException e)
        {
            throw new CliUsageException($"--provider: {e.Message}");
        }
    }

    /// <summary>Token ids written as <c>1,2,3</c> (spaces allowed).</summary>
    public static int[] ParseIds(string text, string option)
    {
        var parts = text.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out ids[i]))
            {
                throw new CliUsageException($"--{option}: '{parts[i]}' is not a token id; expected integers separated by commas.");
            }
        }

        return ids;
    }

    /// <summary>Logs warnings and errors as lines on a writer.</summary>
    private sealed class WriterLogger(TextWriter writer) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel))
            {
                writer.WriteLine($"{(logLevel == LogLevel.Warning ? "warning" : "error")}: {formatter(state, exception)}");
            }
        }
    }
}

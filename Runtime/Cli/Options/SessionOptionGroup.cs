using System.CommandLine;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Providers;

namespace OnnxGpt.Cli.Options;

/// <summary>
/// The options every command that loads a model shares: execution providers, threads, CPU fallback and ONNX
/// Runtime's warnings. A command creates one group, adds it with <see cref="AddTo"/> and reads it with
/// <see cref="Read"/>.
/// </summary>
internal sealed class SessionOptionGroup
{
    /// <summary>The provider list as help and errors spell it.</summary>
    public const string ProviderForms = "cpu, cuda[:DEVICE], tensorrt[:DEVICE], coreml, directml[:DEVICE]";

    /// <param name="defaultThreads">The <c>--threads</c> default: 0 (ONNX Runtime's choice) for most commands.</param>
    /// <param name="threadsDefaultText">How help states that default.</param>
    public SessionOptionGroup(int defaultThreads = 0, string threadsDefaultText = "one per physical core")
    {
        Provider = CliOption.Custom<ExecutionProviderOptions[]>("--provider", "LIST",
            $"execution providers in order of preference, comma-separated: {ProviderForms}", "cpu", ParseProviders);
        Provider.CompletionSources.Add(ExecutionProviderOptions.KnownNames.ToArray());
        Threads = CliOption.OptionalInt("--threads", "N", "ONNX Runtime intra-op threads; 0 lets ONNX Runtime choose",
            threadsDefaultText, min: 0);
        DefaultThreads = defaultThreads;
    }

    /// <summary><c>--provider LIST</c>.</summary>
    public Option<ExecutionProviderOptions[]?> Provider { get; }

    /// <summary><c>--threads N</c>.</summary>
    public Option<int?> Threads { get; }

    /// <summary><c>--allow-cpu-fallback</c>.</summary>
    public Option<bool> AllowCpuFallback { get; } =
        CliOption.Flag("--allow-cpu-fallback", "run on the CPU, with a warning, when a requested provider is not available");

    /// <summary><c>--ort-warnings</c>.</summary>
    public Option<bool> OrtWarnings { get; } =
        CliOption.Flag("--ort-warnings", "print ONNX Runtime's own warnings too (by default only its errors)");

    private int DefaultThreads { get; }

    /// <summary>Adds the group's options to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        command.Options.Add(Provider);
        command.Options.Add(Threads);
        command.Options.Add(AllowCpuFallback);
        command.Options.Add(OrtWarnings);
    }

    /// <summary>The session settings the options describe.</summary>
    public SessionSettings Read(ParseResult parse)
    {
        // Not given, an array option reads as empty.
        List<ExecutionProviderOptions> list = parse.GetValue(Provider) is { Length: > 0 } given ? [.. given] : [new CpuProvider()];
        int threads = parse.GetValue(Threads) ?? DefaultThreads;
        if (threads != 0 || parse.GetValue(Threads) is not null)
        {
            int at = list.FindIndex(p => p is CpuProvider);
            var cpu = at >= 0 ? (CpuProvider)list[at] with { IntraOpThreads = threads } : new CpuProvider(threads);
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
            AllowCpuFallback = parse.GetValue(AllowCpuFallback),
            OnnxRuntimeLogLevel = OrtLogLevel(parse),
        };
    }

    /// <summary>ONNX Runtime's console level: errors only, or warnings too with <c>--ort-warnings</c>.</summary>
    public OrtLoggingLevel OrtLogLevel(ParseResult parse) =>
        parse.GetValue(OrtWarnings) ? OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING : OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR;

    /// <summary>Loads a model with the settings; provider warnings go to <paramref name="stderr"/> as lines.</summary>
    public GptModel Load(string path, ParseResult parse, TextWriter stderr) => Load(path, Read(parse), stderr);

    /// <summary>Loads the model with <paramref name="settings"/> (<see cref="Read"/>'s, adjusted by the command).</summary>
    public static GptModel Load(string path, SessionSettings settings, TextWriter stderr) =>
        GptModel.Load(path, settings, new WriterLogger(stderr));

    private static (ExecutionProviderOptions[]? Value, string? Error) ParseProviders(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var list = new List<ExecutionProviderOptions>();
        foreach (var part in parts)
        {
            ExecutionProviderOptions provider;
            try
            {
                provider = ExecutionProviderOptions.Parse(part);
            }
            catch (ArgumentException)
            {
                return (null, $"'{part}' is not an execution provider; expected a comma-separated list of {ProviderForms}.");
            }

            if (list.Any(p => p.Name == provider.Name))
            {
                return (null, $"'{provider.Name}' is listed twice in '{text}'; list each provider once.");
            }

            list.Add(provider);
        }

        int cpu = list.FindIndex(p => p is CpuProvider);
        if (cpu >= 0 && cpu != list.Count - 1)
        {
            return (null, $"cpu must come last in '{text}' (ONNX Runtime always tries it last).");
        }

        return ([.. list], null);
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
                writer.WriteLine($"{(logLevel == LogLevel.Warning ? "warning" : "error")}: {LibraryMessages.ForCli(formatter(state, exception))}");
            }
        }
    }
}

namespace OnnxGpt.Cli.Benchmarking;

/// <summary>
/// The engines <c>onnxgpt bench compare</c> can measure, by name. The tool knows its own host (<c>onnxgpt</c>); the
/// repository's bench build (<c>Runtime/Bench</c>, run by <c>build.ps1 bench</c>) adds ONNX Runtime GenAI, whose
/// native library the tool does not ship. llama.cpp is measured by its own program (<c>--llamabench</c>).
/// </summary>
internal static class BenchEngines
{
    /// <summary>Our host's name.</summary>
    public const string OnnxGpt = "onnxgpt";

    private static readonly Dictionary<string, Func<string, int, IBenchEngine>> Factories = new(StringComparer.Ordinal)
    {
        [OnnxGpt] = (folder, threads) => new OnnxGptEngine(folder, threads),
    };

    /// <summary>The names of the engines this program can run, ours first.</summary>
    public static IReadOnlyList<string> Names => [.. Factories.Keys];

    /// <summary>Adds an engine (a bench build registers GenAI before it runs the command line).</summary>
    public static void Register(string name, Func<string, int, IBenchEngine> create) => Factories[name] = create;

    /// <summary>Loads <paramref name="folder"/> in the engine <paramref name="name"/>.</summary>
    public static IBenchEngine Create(string name, string folder, int threads) => Factories.TryGetValue(name, out var create)
        ? create(folder, threads)
        : throw new CliUsageException($"--engines: '{name}' is not an engine this program runs; it runs {string.Join(", ", Names)}" +
            (name == "genai" ? " (GenAI is measured by the repository's bench build: dotnet pwsh ./build.ps1 bench)." : "."));
}

using System.CommandLine;
using OnnxGpt.Cli.Benchmarking;
using OnnxGpt.Cli.Options;
using OnnxGpt.Contracts;

namespace OnnxGpt.Cli.Commands;

/// <summary>
/// <c>onnxgpt bench constraint</c>: the cost of structured output per token (a JSON schema's token mask, on its first
/// run and once its states are known) against the free decode step, on seeded model variants exported as
/// <c>bench compare</c> exports them (see <see cref="ConstraintBench"/>). Run it alone on the machine: it times.
/// </summary>
internal sealed class BenchConstraintCommand : CliCommand
{
    private static readonly string[] VariantNames = ["portable", "fused", "int8", "int4"];

    private readonly Option<string> _work = CliOption.Text("--work", "DIR",
        "where model folders are exported (once, reused; the same folders as bench compare)",
        () => Path.Combine(Path.GetTempPath(), "onnxgpt-bench"));

    private readonly Option<string> _preset = CliOption.Choice("--preset",
        $"the model shape, with seeded GPT-2 weights: {string.Join(", ", GptPresets.Names)}", "gpt2", [.. GptPresets.Names], helpName: "NAME");

    private readonly Option<long> _seed = CliOption.Long("--seed", "N", "seed of the weights", 1, min: 0);

    private readonly Option<string[]?> _variants = CliOption.Custom<string[]>("--variants", "LIST",
        $"model variants, comma-separated: {string.Join(", ", VariantNames)}", "fused,int4",
        text => text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) is { Length: > 0 } items
            ? items.FirstOrDefault(i => !VariantNames.Contains(i)) is { } unknown
                ? (null, $"'{unknown}' is not a variant; expected {string.Join(", ", VariantNames)}.")
                : (items, null)
            : (null, $"'{text}' names no variant; expected a comma-separated list."));

    private readonly Option<int> _newTokens = CliOption.Int("--new-tokens", "N", "most tokens per run (a run ends earlier when its JSON is complete)", 64, min: 1);

    private readonly Option<int> _reps = CliOption.Int("--reps", "N", "repetitions per variant (medians reported)", 5, min: 1);

    private readonly Option<int> _threads = CliOption.Int("--threads", "N", "intra-op threads", 2, min: 1);

    public BenchConstraintCommand()
        : base("constraint", "what a JSON schema's token mask costs per token, cold and warm, against the free decode step")
    {
        Options.Add(_work);
        Options.Add(_preset);
        Options.Add(_seed);
        Options.Add(_variants);
        Options.Add(_newTokens);
        Options.Add(_reps);
        Options.Add(_threads);
    }

    protected override int Run(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        var settings = new ComparisonSettings
        {
            Work = parse.GetRequiredValue(_work),
            Preset = parse.GetRequiredValue(_preset),
            Seed = (ulong)parse.GetValue(_seed),
            Variants = parse.GetValue(_variants) is { Length: > 0 } variants ? variants : ["fused", "int4"],
            Threads = parse.GetValue(_threads),
        };
        int reps = parse.GetValue(_reps), newTokens = parse.GetValue(_newTokens);
        var config = GptPresets.Get(settings.Preset);
        stdout.WriteLine($"model: {settings.Preset} (seeded GPT-2 initialisation, seed {settings.Seed}); {settings.Threads} threads; " +
            $"up to {newTokens} tokens under a JSON schema; {reps} repetitions");
        Directory.CreateDirectory(settings.Work);
        var exporter = new EngineComparison(settings, stdout);
        var folders = settings.Variants.ToDictionary(v => v, v => exporter.EnsureExported(config, v));
        stdout.WriteLine("(the row after each variant's repetitions: | variant | free step ms | constrained step ms, cold | " +
            "mask+advance ms/token, cold | ÷ free step | mask+advance µs/token, warm | ÷ free step |)");
        foreach (var variant in settings.Variants)
        {
            ConstraintBench.Run(variant, folders[variant], settings.Threads, reps, newTokens, stdout);
        }

        return ExitCodes.Success;
    }
}

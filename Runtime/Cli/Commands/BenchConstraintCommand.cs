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
    private readonly SeededVariantsOptionGroup _models = new("fused", "int4");

    private readonly Option<int> _newTokens = CliOption.Int("--new-tokens", "N", "most tokens per run (a run ends earlier when its JSON is complete)", 64, min: 1);

    private readonly Option<int> _reps = CliOption.Int("--reps", "N", "repetitions per variant (medians reported)", 5, min: 1);

    public BenchConstraintCommand()
        : base("constraint", "what a JSON schema's token mask costs per token, cold and warm, against the free decode step")
    {
        _models.AddTo(this);
        Options.Add(_newTokens);
        Options.Add(_reps);
    }

    protected override int Run(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        var settings = _models.Read(parse);
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

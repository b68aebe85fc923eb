using System.CommandLine;
using OnnxGpt.Cli.Benchmarking;
using OnnxGpt.Cli.Options;
using OnnxGpt.Contracts;

namespace OnnxGpt.Cli.Commands;

/// <summary>
/// <c>onnxgpt bench decoding</c>: the decode step with the decoding controls (OpenAI's options, log-probabilities,
/// n sampled sequences, beam search) against the plain greedy step, with the managed bytes per step and what beam
/// search copies of the cache, on seeded model variants exported as <c>bench compare</c> exports them (see
/// <see cref="DecodingBench"/>). Run it alone on the machine: it times.
/// </summary>
internal sealed class BenchDecodingCommand : CliCommand
{
    private static readonly string[] VariantNames = ["portable", "fused", "int8", "int4"];

    private readonly Option<string> _work = CliOption.Text("--work", "DIR",
        "where model folders are exported (once, reused; the same folders as bench compare)",
        () => Path.Combine(Path.GetTempPath(), "onnxgpt-bench"));

    private readonly Option<string> _preset = CliOption.Choice("--preset",
        $"the model shape, with seeded GPT-2 weights: {string.Join(", ", GptPresets.Names)}", "gpt2", [.. GptPresets.Names], helpName: "NAME");

    private readonly Option<long> _seed = CliOption.Long("--seed", "N", "seed of the weights", 1, min: 0);

    private readonly Option<string[]?> _variants = CliOption.Custom<string[]>("--variants", "LIST",
        $"model variants, comma-separated: {string.Join(", ", VariantNames)}", "fused",
        text => text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) is { Length: > 0 } items
            ? items.FirstOrDefault(i => !VariantNames.Contains(i)) is { } unknown
                ? (null, $"'{unknown}' is not a variant; expected {string.Join(", ", VariantNames)}.")
                : (items, null)
            : (null, $"'{text}' names no variant; expected a comma-separated list."));

    private readonly Option<int> _promptLength = CliOption.Int("--prompt-length", "N", "tokens of the (seeded, random) prompt", 64, min: 1);

    private readonly Option<int> _newTokens = CliOption.Int("--new-tokens", "N", "decode steps timed per run", 32, min: 2);

    private readonly Option<int> _reps = CliOption.Int("--reps", "N", "repetitions per variant (medians reported)", 3, min: 1);

    private readonly Option<int> _threads = CliOption.Int("--threads", "N", "intra-op threads", 2, min: 1);

    public BenchDecodingCommand()
        : base("decoding", "the decode step with OpenAI's options, log-probabilities, n sequences and beam search, against the greedy step")
    {
        Options.Add(_work);
        Options.Add(_preset);
        Options.Add(_seed);
        Options.Add(_variants);
        Options.Add(_promptLength);
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
            Variants = parse.GetValue(_variants) is { Length: > 0 } variants ? variants : ["fused"],
            Threads = parse.GetValue(_threads),
        };
        int reps = parse.GetValue(_reps), promptLength = parse.GetValue(_promptLength), newTokens = parse.GetValue(_newTokens);
        var config = GptPresets.Get(settings.Preset);
        if (promptLength + newTokens > config.ContextLength)
        {
            stderr.WriteLine($"--prompt-length {promptLength} + --new-tokens {newTokens} exceed the model's context of {config.ContextLength} tokens.");
            return ExitCodes.Usage;
        }

        stdout.WriteLine($"model: {settings.Preset} (seeded GPT-2 initialisation, seed {settings.Seed}); {settings.Threads} threads; " +
            $"a {promptLength}-token prompt, {newTokens} decode steps per run; {reps} repetitions");
        Directory.CreateDirectory(settings.Work);
        var exporter = new EngineComparison(settings, stdout);
        var folders = settings.Variants.ToDictionary(v => v, v => exporter.EnsureExported(config, v));
        foreach (var variant in settings.Variants)
        {
            DecodingBench.Execute(variant, folders[variant], settings.Threads, reps, promptLength, newTokens, stdout);
        }

        return ExitCodes.Success;
    }
}

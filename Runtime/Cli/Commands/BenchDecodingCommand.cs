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
    private readonly SeededVariantsOptionGroup _models = new("fused");

    private readonly Option<int> _promptLength = CliOption.Int("--prompt-length", "N", "tokens of the (seeded, random) prompt", 64, min: 1);

    private readonly Option<int> _newTokens = CliOption.Int("--new-tokens", "N", "decode steps timed per run", 32, min: 2);

    private readonly Option<int> _reps = CliOption.Int("--reps", "N", "repetitions per variant (medians reported)", 3, min: 1);

    public BenchDecodingCommand()
        : base("decoding", "the decode step with OpenAI's options, log-probabilities, n sequences and beam search, against the greedy step")
    {
        _models.AddTo(this);
        Options.Add(_promptLength);
        Options.Add(_newTokens);
        Options.Add(_reps);
    }

    protected override int Run(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        var settings = _models.Read(parse);
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

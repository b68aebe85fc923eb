using System.CommandLine;
using OnnxGpt.Cli.Benchmarking;
using OnnxGpt.Cli.Options;
using OnnxGpt.Contracts;

namespace OnnxGpt.Cli.Commands;

/// <summary>
/// <c>onnxgpt bench compare</c>: engines side by side on the same exported folders, each measurement in its own child
/// process, engines alternating within every repetition (see <see cref="EngineComparison"/>). The repository's bench
/// build (<c>dotnet pwsh ./build.ps1 bench</c>) runs this command with ONNX Runtime GenAI added to the engines.
/// </summary>
internal sealed class BenchCompareCommand : CliCommand
{
    private static readonly string[] VariantNames = ["portable", "decomposed", "fused", "int8", "int4", "fused-kv16", "int4-kv16"];

    private readonly Option<string> _work = CliOption.Text("--work", "DIR",
        "where model folders are exported (once, reused) and results.json is written",
        () => Path.Combine(Path.GetTempPath(), "onnxgpt-bench"));

    private readonly Option<string> _preset = CliOption.Choice("--preset",
        $"the model shape, with seeded GPT-2 weights: {string.Join(", ", GptPresets.Names)}", "gpt2", [.. GptPresets.Names], helpName: "NAME");

    private readonly Option<string?> _config = CliOption.Text("--config", "FILE",
        "a config.json (GPT-2 or Llama fields) measured with seeded weights instead of --preset", "none");

    private readonly Option<string?> _checkpoint = CliOption.Text("--checkpoint", "PATH",
        "a checkpoint measured instead of seeded weights: a llama2.c .bin or a Hugging Face folder", "none");

    private readonly Option<long> _seed = CliOption.Long("--seed", "N", "seed of the weights and of the prompts", 1, min: 0);

    private readonly Option<string[]?> _variants = CliOption.Custom<string[]>("--variants", "LIST",
        $"model variants, comma-separated: {string.Join(", ", VariantNames)} (as onnxgpt export --graph/--quantize; -kv16: with --kv-cache fp16; decomposed: the " +
        "Llama portable graph without opset 23's RMSNormalization/RotaryEmbedding/Attention)", "fused,int4",
        text => List(text, VariantNames, "variant"));

    private readonly Option<string[]?> _engines = CliOption.Custom<string[]>("--engines", "LIST",
        "engines, comma-separated, ours first: onnxgpt, and genai in the repository's bench build", "every engine this program runs",
        text => List(text, null, "engine"));

    private readonly Option<int> _prompt = CliOption.Int("--prompt", "N", "prompt tokens for the prompt-processing speed and time to first token", 512, min: 1);

    private readonly Option<int[]?> _contexts = CliOption.IntList("--contexts", "LIST",
        "tokens already in the sequence when decoding is timed, comma-separated", "16,256,512,1000", min: 1);

    private readonly Option<int> _newTokens = CliOption.Int("--new-tokens", "N", "tokens timed per context (fewer where the context leaves less room)", 128, min: 1);

    private readonly Option<int> _reps = CliOption.Int("--reps", "N", "repetitions; engines alternate in order from one to the next", 3, min: 1);

    private readonly Option<int> _threads = CliOption.Int("--threads", "N", "intra-op threads of every engine", 2, min: 1);

    private readonly Option<string?> _llamaBench = CliOption.Text("--llamabench", "PATH",
        "the llamabench.dll built from its own folder: llama.cpp runs in the same repetitions (f32 beside fused, q8_0 beside int8, q4_0 beside int4)",
        "llama.cpp left out");

    // A child process measures one engine on one folder (hidden: the parent passes these).
    private readonly Option<string?> _child = new("--child") { Hidden = true };

    private readonly Option<string?> _model = new("--model") { Hidden = true };

    private readonly Option<string?> _variantName = new("--variant-name") { Hidden = true };

    public BenchCompareCommand()
        : base("compare", "our host beside ONNX Runtime GenAI and llama.cpp on the same model folders, in alternating child processes")
    {
        Options.Add(_work);
        Options.Add(_preset);
        Options.Add(_config);
        Options.Add(_checkpoint);
        Options.Add(_seed);
        Options.Add(_variants);
        Options.Add(_engines);
        Options.Add(_prompt);
        Options.Add(_contexts);
        Options.Add(_newTokens);
        Options.Add(_reps);
        Options.Add(_threads);
        Options.Add(_llamaBench);
        Options.Add(_child);
        Options.Add(_model);
        Options.Add(_variantName);
        Validators.Add(r =>
        {
            if ((r.Given(_preset) ? 1 : 0) + (r.Given(_config) ? 1 : 0) + (r.Given(_checkpoint) ? 1 : 0) > 1)
            {
                r.AddError("give at most one of --preset, --config, --checkpoint.");
            }

            if (r.ValueIfValid(_llamaBench) is { } llama && !File.Exists(llama))
            {
                r.AddError($"--llamabench: '{llama}' does not exist; expected the llamabench.dll built from its project.");
            }
        });
    }

    protected override int Run(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        var settings = new ComparisonSettings
        {
            Work = parse.GetRequiredValue(_work),
            Preset = parse.GetRequiredValue(_preset),
            ConfigFile = parse.GetValue(_config),
            Checkpoint = parse.GetValue(_checkpoint),
            Seed = (ulong)parse.GetValue(_seed),
            Variants = parse.GetValue(_variants) is { Length: > 0 } variants ? variants : ["fused", "int4"],
            Engines = parse.GetValue(_engines) is { Length: > 0 } engines ? engines : BenchEngines.Names,
            Prompt = parse.GetValue(_prompt),
            Contexts = parse.GetValue(_contexts) is { Length: > 0 } contexts ? contexts : [16, 256, 512, 1000],
            NewTokens = parse.GetValue(_newTokens),
            Reps = parse.GetValue(_reps),
            Threads = parse.GetValue(_threads),
            LlamaBench = parse.GetValue(_llamaBench),
        };
        if (parse.GetValue(_child) is { } child)
        {
            return EngineComparison.RunChild(settings, child, parse.GetValue(_model)!, parse.GetValue(_variantName)!, stdout);
        }

        foreach (var engine in settings.Engines)
        {
            // Each engine starts in a child process; an unknown one is refused before anything is exported.
            if (!BenchEngines.Names.Contains(engine))
            {
                BenchEngines.Create(engine, "", 0);
            }
        }

        return new EngineComparison(settings, stdout).RunAll();
    }

    private static (string[]? Value, string? Error) List(string text, string[]? allowed, string what)
    {
        var items = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (items.Length == 0)
        {
            return (null, $"'{text}' names no {what}; expected a comma-separated list.");
        }

        if (allowed is not null && items.FirstOrDefault(i => !allowed.Contains(i)) is { } unknown)
        {
            return (null, $"'{unknown}' is not a {what}; expected {string.Join(", ", allowed)}.");
        }

        return (items, null);
    }
}

using System.CommandLine;
using OnnxGpt.Cli.Benchmarking;
using OnnxGpt.Contracts;

namespace OnnxGpt.Cli.Options;

/// <summary>
/// The options of the benchmarks that time seeded model variants exported as <c>bench compare</c> exports them
/// (<c>bench constraint</c>, <c>bench decoding</c>): the export folder, the preset, the seed, the variants and the
/// threads. A command creates one group, adds it with <see cref="AddTo"/> and reads it with <see cref="Read"/>.
/// </summary>
internal sealed class SeededVariantsOptionGroup
{
    /// <summary>The variants a benchmark can export.</summary>
    public static readonly string[] VariantNames = ["portable", "fused", "int8", "int4"];

    private readonly string[] _defaultVariants;

    /// <param name="defaultVariants">The variants timed when <c>--variants</c> is not given.</param>
    public SeededVariantsOptionGroup(params string[] defaultVariants)
    {
        _defaultVariants = defaultVariants;
        Variants = CliOption.Custom<string[]>("--variants", "LIST",
            $"model variants, comma-separated: {string.Join(", ", VariantNames)}", string.Join(",", defaultVariants),
            text => text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) is { Length: > 0 } items
                ? items.FirstOrDefault(i => !VariantNames.Contains(i)) is { } unknown
                    ? (null, $"'{unknown}' is not a variant; expected {string.Join(", ", VariantNames)}.")
                    : (items, null)
                : (null, $"'{text}' names no variant; expected a comma-separated list."));
    }

    /// <summary><c>--work DIR</c>.</summary>
    public Option<string> Work { get; } = CliOption.Text("--work", "DIR",
        "where model folders are exported (once, reused; the same folders as bench compare)",
        () => Path.Combine(Path.GetTempPath(), "onnxgpt-bench"));

    /// <summary><c>--preset NAME</c>.</summary>
    public Option<string> Preset { get; } = CliOption.Choice("--preset",
        $"the model shape, with seeded GPT-2 weights: {string.Join(", ", GptPresets.Names)}", "gpt2", [.. GptPresets.Names], helpName: "NAME");

    /// <summary><c>--seed N</c>.</summary>
    public Option<long> Seed { get; } = CliOption.Long("--seed", "N", "seed of the weights", 1, min: 0);

    /// <summary><c>--variants LIST</c>.</summary>
    public Option<string[]?> Variants { get; }

    /// <summary><c>--threads N</c>.</summary>
    public Option<int> Threads { get; } = CliOption.Int("--threads", "N", "intra-op threads", 2, min: 1);

    /// <summary>Adds the group's options to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        command.Options.Add(Work);
        command.Options.Add(Preset);
        command.Options.Add(Seed);
        command.Options.Add(Variants);
        command.Options.Add(Threads);
    }

    /// <summary>The export settings the options describe.</summary>
    public ComparisonSettings Read(ParseResult parse) => new()
    {
        Work = parse.GetRequiredValue(Work),
        Preset = parse.GetRequiredValue(Preset),
        Seed = (ulong)parse.GetValue(Seed),
        Variants = parse.GetValue(Variants) is { Length: > 0 } variants ? variants : _defaultVariants,
        Threads = parse.GetValue(Threads),
    };
}

using System.CommandLine;
using System.Diagnostics;
using OnnxGpt.Cli.Benchmarking;
using OnnxGpt.Cli.Options;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;

namespace OnnxGpt.Cli.Commands;

/// <summary>
/// <c>onnxgpt bench context</c>: how decoding slows down with the context, measured so that the machine's drift
/// cancels: one process and one session per model, a sequence already at each context length, and blocks of tokens
/// that alternate between them, each block rewound afterwards so that its context stays where it is. Reports per
/// model the median tokens/s at each length and the median (and range) of the per-block ratio of the longest
/// context's speed to the shortest's.
/// </summary>
internal sealed class BenchContextCommand : CliCommand
{
    private readonly Option<string[]> _models = new("--model")
    {
        Description = "a model folder; repeat to measure several, one after the other",
        HelpName = "DIR",
        Required = true,
        AllowMultipleArgumentsPerToken = false,
    };

    private readonly Option<int[]?> _contexts = CliOption.IntList("--contexts", "L",
        "tokens in the sequence when a block starts, comma-separated; the ratio is the last's speed ÷ the first's", "16,512", min: 1);

    private readonly Option<int> _block = CliOption.Int("--block", "N", "tokens timed per block", 16, min: 1);

    private readonly Option<int> _blocks = CliOption.Int("--blocks", "N", "blocks per context length (after one warm-up block each)", 24, min: 1);

    private readonly Option<long> _seed = CliOption.Long("--seed", "N", "seed of the random prompt ids", 1, min: 0);

    private readonly SessionOptionGroup _session = new(defaultThreads: 2, threadsDefaultText: "2, for figures comparable across machines");

    public BenchContextCommand()
        : base("context", "decode speed at several context lengths, blocks alternating in one process: the long ÷ short ratio per block")
    {
        Options.Add(_models);
        Options.Add(_contexts);
        Options.Add(_block);
        Options.Add(_blocks);
        Options.Add(_seed);
        _session.AddTo(this);
    }

    protected override int Run(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        var settings = _session.Read(parse);
        int[] contexts = parse.GetValue(_contexts) is { Length: > 0 } given ? given : [16, 512];
        int block = parse.GetValue(_block), blocks = parse.GetValue(_blocks);
        stdout.WriteLine($"{block} tokens per block, {blocks} blocks per length, lengths {string.Join(", ", contexts)} alternating");
        stdout.WriteLine($"| model | {string.Join(" | ", contexts.Select(c => $"tok/s @{c}"))} | @{contexts[^1]} ÷ @{contexts[0]} per block, median [range] | managed B/token |");
        stdout.WriteLine($"|---|{string.Concat(contexts.Select(_ => "---|"))}---|---|");
        foreach (string path in parse.GetRequiredValue(_models))
        {
            using var model = SessionOptionGroup.Load(path, settings, stderr);
            int longest = contexts.Max() + block + 1;
            if (longest > model.Config.ContextLength)
            {
                throw new CliUsageException($"--contexts: {contexts.Max()} tokens and a block of {block} need {longest} positions; {path} has {model.Config.ContextLength}.");
            }

            var random = new Random((int)parse.GetValue(_seed));
            var options = new GenerationOptions { DoSample = false, MaxNewTokens = model.Config.ContextLength };
            var generators = contexts.Select(c =>
            {
                var g = model.CreateGenerator(options, new GeneratorOptions { DecodeText = false, StopAtEndOfSequence = false });
                g.Append(Enumerable.Range(0, c).Select(_ => random.Next(model.Config.VocabSize)).ToArray());
                g.GenerateNextToken();   // the prompt
                return g;
            }).ToArray();
            try
            {
                var speeds = contexts.Select(_ => new List<double>()).ToArray();
                long bytes = 0, timed = 0;
                for (int b = -1; b < blocks; b++)
                {
                    for (int i = 0; i < generators.Length; i++)
                    {
                        // Alternate the order from block to block, so that neither length always follows the other.
                        int at = b % 2 == 0 ? i : generators.Length - 1 - i;
                        var g = generators[at];
                        int length = g.GetSequence(0).Length;
                        long allocated = GC.GetAllocatedBytesForCurrentThread();
                        long started = Stopwatch.GetTimestamp();
                        for (int t = 0; t < block; t++)
                        {
                            g.GenerateNextToken();
                        }

                        double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
                        if (b >= 0)
                        {
                            speeds[at].Add(block / seconds);
                            bytes += GC.GetAllocatedBytesForCurrentThread() - allocated;
                            timed += block;
                        }

                        g.RewindTo(length);   // the next block starts at the same length again
                    }
                }

                var ratios = Enumerable.Range(0, blocks).Select(k => speeds[^1][k] / speeds[0][k]).Order().ToArray();
                stdout.WriteLine($"| {path} | {string.Join(" | ", speeds.Select(s => SampleStatistics.Median(s).ToString("F1")))} | " +
                    $"{SampleStatistics.Median(ratios):F3} [{ratios[0]:F2}–{ratios[^1]:F2}] | {(double)bytes / timed:F0} |");
            }
            finally
            {
                foreach (var g in generators)
                {
                    g.Dispose();
                }
            }
        }

        return ExitCodes.Success;
    }
}

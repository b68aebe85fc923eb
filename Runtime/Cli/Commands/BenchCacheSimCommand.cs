using System.CommandLine;
using OnnxGpt.Cli.Benchmarking;
using OnnxGpt.Cli.Options;

namespace OnnxGpt.Cli.Commands;

/// <summary>
/// <c>onnxgpt bench cache-sim</c>: the KV-cache hit rate of returning turns across a cluster of N nodes, with the
/// conversation grains' affinity and with a router that has none (<see cref="CacheHitSimulation"/>). No model: it
/// simulates arrivals, so it needs no quiet machine.
/// </summary>
internal sealed class BenchCacheSimCommand : CliCommand
{
    private static readonly CacheHitSimulation.Settings Defaults = new();

    private readonly Option<int[]?> _nodes = CliOption.IntList("--nodes", "LIST", "cluster sizes, comma-separated", "10,100,1000", min: 1);

    private readonly Option<int> _slots = CliOption.Int("--slots", "N", "conversation slots per node (serve --parallel)", Defaults.Slots, min: 1);

    private readonly Option<double> _rate = CliOption.Number("--arrivals", "N", "new conversations per node per minute (Poisson)", Defaults.ArrivalsPerNodePerMinute, NumberRange.Above(0));

    private readonly Option<double> _turns = CliOption.Number("--mean-turns", "N",
        "mean turns per conversation (geometric; 2.0 is LMSYS-Chat-1M's average)", Defaults.MeanTurns, NumberRange.AtLeast(1));

    private readonly Option<double> _turnSeconds = CliOption.Number("--turn-seconds", "S", "time a turn's reply takes", Defaults.TurnSeconds, NumberRange.AtLeast(0));

    private readonly Option<double> _think = CliOption.Number("--think-median", "S", "median think time between turns (log-normal)", Defaults.ThinkMedianSeconds, NumberRange.AtLeast(0));

    private readonly Option<double> _sigma = CliOption.Number("--think-sigma", "X", "the think time's log-normal sigma", Defaults.ThinkSigma, NumberRange.AtLeast(0));

    private readonly Option<double> _idle = CliOption.Number("--idle-timeout", "S", "a conversation idle this long gives its slot (and cache) back", Defaults.IdleTimeoutSeconds, NumberRange.AtLeast(0));

    private readonly Option<double> _duration = CliOption.Number("--duration", "S", "simulated time", Defaults.DurationSeconds, NumberRange.Above(0));

    private readonly Option<long> _seed = CliOption.Long("--seed", "N", "seed of the arrivals", 1, min: 0);

    public BenchCacheSimCommand()
        : base("cache-sim", "simulated KV-cache hit rate of returning turns on N nodes: conversation affinity (the Orleans grains) against a router without it")
    {
        Options.Add(_nodes);
        Options.Add(_slots);
        Options.Add(_rate);
        Options.Add(_turns);
        Options.Add(_turnSeconds);
        Options.Add(_think);
        Options.Add(_sigma);
        Options.Add(_idle);
        Options.Add(_duration);
        Options.Add(_seed);
    }

    protected override int Run(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        var settings = new CacheHitSimulation.Settings
        {
            Slots = parse.GetValue(_slots),
            ArrivalsPerNodePerMinute = parse.GetValue(_rate),
            MeanTurns = parse.GetValue(_turns),
            TurnSeconds = parse.GetValue(_turnSeconds),
            ThinkMedianSeconds = parse.GetValue(_think),
            ThinkSigma = parse.GetValue(_sigma),
            IdleTimeoutSeconds = parse.GetValue(_idle),
            DurationSeconds = parse.GetValue(_duration),
            Seed = (ulong)parse.GetValue(_seed),
        };
        stdout.WriteLine($"{settings.Slots} slots per node; {settings.ArrivalsPerNodePerMinute} new conversations per node per minute (Poisson); " +
            $"turns geometric, mean {settings.MeanTurns}; {settings.TurnSeconds} s per turn; think time log-normal, median {settings.ThinkMedianSeconds} s, sigma {settings.ThinkSigma}; " +
            $"idle timeout {settings.IdleTimeoutSeconds} s; {settings.DurationSeconds} s simulated; seed {settings.Seed}");
        stdout.WriteLine("| nodes | turns | returning turns | affinity: hit rate | refused | slots held per node | random router: hit rate |");
        stdout.WriteLine("|---:|---:|---:|---:|---:|---:|---:|");
        foreach (int nodes in parse.GetValue(_nodes) is { Length: > 0 } list ? list : [10, 100, 1000])
        {
            var (affinity, random) = new CacheHitSimulation(settings with { Nodes = nodes }).Run();
            stdout.WriteLine($"| {nodes} | {affinity.Turns} | {affinity.ReturningTurns} | {affinity.HitRate:P1} | {affinity.Refused} | {affinity.MeanSlotsHeld:F2} of {settings.Slots} | {random.HitRate:P2} |");
        }

        return ExitCodes.Success;
    }
}

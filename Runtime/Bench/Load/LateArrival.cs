using System.Diagnostics;
using System.Globalization;

namespace OnnxGpt.Bench.Load;

/// <summary>
/// The late-arrival measurement: a request that arrives while <see cref="Others"/> others decode, against the same
/// prompt alone just before, in many trials whose arrival instants are spread over the decoding step. Each trial
/// asks the server for its timings, so its time to first token splits into: HTTP outside the server's handler, the
/// handler before the engine (body, JSON, tokens), waiting for a slot (the rest of the run in flight), waiting for
/// its run, its prompt's run, sampling, and the server writing the first piece.
/// </summary>
public static class LateArrival
{
    /// <summary>Requests decoding when the late one arrives.</summary>
    public const int Others = 7;

    /// <summary>The parts of a time to first token, in order: a name, and how to get it from a trial's client run (milliseconds; NaN without server timings).</summary>
    private static readonly (string Name, Func<ClientRun, double> Get)[] Parts =
    [
        ("HTTP outside the handler", r => 1000 * r.TimeToFirstToken - T(r, "first_sent_ms")),
        ("handler before the engine", r => T(r, "submitted_ms")),
        ("waiting for a slot (run in flight)", r => T(r, "placed_ms") - T(r, "submitted_ms")),
        ("slot to its run", r => T(r, "prompt_started_ms") - T(r, "placed_ms")),
        ("its prompt's run", r => T(r, "prompt_fed_ms") - T(r, "prompt_started_ms")),
        ("sampling the first token", r => T(r, "first_token_ms") - T(r, "prompt_fed_ms")),
        ("server writing the first piece", r => T(r, "first_sent_ms") - T(r, "first_token_ms")),
    ];

    /// <summary>One trial: where in the step the late request came (0–1 of a step, as aimed), alone and with the others.</summary>
    public sealed record Trial(double Phase, ClientRun Alone, ClientRun Late)
    {
        public double Ratio => Late.TimeToFirstToken / Alone.TimeToFirstToken;

        /// <summary>How long the engine's run in flight had been going when the late request was submitted (ms; 0: none was).</summary>
        public double RunInFlightAgeMs => Late.Timings is { } t && t.TryGetValue("run_in_flight_since_ms", out double since) ? T(Late, "submitted_ms") - since : 0;
    }

    /// <summary>
    /// <paramref name="trials"/> trials (after one untimed one that warms up the paths a late arrival takes). In
    /// trial k the late request goes out at phase p_k of a step after a piece reaches the first of the others, the
    /// phases a permutation of 0, 1/n, ..., (n−1)/n, so the arrival instants cover the step evenly and do not follow
    /// the machine's drift; the step is the median gap between that client's pieces so far.
    /// </summary>
    public static List<Trial> Measure(HttpClient http, string[] prompts, int latePrompt, int newTokens, int trials)
    {
        int stride = Enumerable.Range(1, trials).Select(s => 7 + 6 * s).First(s => Gcd(s, trials) == 1);
        var results = new List<Trial>();
        for (int t = -1; t < trials; t++)
        {
            double phase = t < 0 ? 0.5 : (double)(t * stride % trials) / trials;
            var trial = Once(http, prompts, latePrompt, newTokens, phase);
            if (t >= 0)
            {
                results.Add(trial);
            }
        }

        return results;
    }

    /// <summary>Prints the ratio (median, p90, range, share within 2×) and the split of both times to first token.</summary>
    public static void Report(string variant, List<Trial> trials)
    {
        static string F(double v) => double.IsNaN(v) ? "–" : v.ToString("F1", CultureInfo.InvariantCulture);
        var ratios = trials.Select(x => x.Ratio).ToList();
        int within = ratios.Count(r => r <= 2);
        Console.WriteLine($"{variant}: a request arriving while {Others} others decode: TTFT ÷ its TTFT alone: median {LoadBench.Percentile(ratios, 50):F2}, " +
            $"p90 {LoadBench.Percentile(ratios, 90):F2} [{ratios.Min():F2}–{ratios.Max():F2}], within 2× in {within}/{ratios.Count} trials; " +
            $"first token after {1000 * LoadBench.Percentile(trials.Select(x => x.Late.TimeToFirstToken), 50):F1} ms (p50), alone {1000 * LoadBench.Percentile(trials.Select(x => x.Alone.TimeToFirstToken), 50):F1} ms");
        var ages = trials.Select(x => x.RunInFlightAgeMs).ToList();
        Console.WriteLine($"{variant}:   arrivals: the engine's run in flight had been going {ages.Min():F1}–{ages.Max():F1} ms (p50 {LoadBench.Percentile(ages, 50):F1}); " +
            $"{ages.Count(a => a == 0)} of {ages.Count} arrived between runs");
        Console.WriteLine($"{variant}:   | part of the time to first token, ms | alone p50 | alone mean | late p50 | late p90 | late mean |");
        Console.WriteLine($"{variant}:   |---|---:|---:|---:|---:|---:|");
        foreach (var (name, get) in Parts.Prepend(("time to first token (client)", r => 1000 * r.TimeToFirstToken)))
        {
            var alone = trials.Select(x => get(x.Alone)).ToList();
            var late = trials.Select(x => get(x.Late)).ToList();
            Console.WriteLine($"{variant}:   | {name} | {F(LoadBench.Percentile(alone, 50))} | {F(Mean(alone))} | {F(LoadBench.Percentile(late, 50))} | {F(LoadBench.Percentile(late, 90))} | {F(Mean(late))} |");
        }
    }

    private static Trial Once(HttpClient http, string[] prompts, int latePrompt, int newTokens, double phase)
    {
        var clock = Stopwatch.StartNew();
        var alone = StreamingClient.RunAsync(http, clock, latePrompt, prompts[latePrompt], 2, timings: true).GetAwaiter().GetResult();
        using var stop = new CancellationTokenSource();
        using var piece = new SemaphoreSlim(0);
        int decoding = 0;
        var times0 = new List<double>();
        var others = Enumerable.Range(0, Others).Select(i => Task.Run(() => StreamingClient.RunAsync(http, clock, i, prompts[i], newTokens, pieces =>
        {
            if (pieces == 4)
            {
                Interlocked.Increment(ref decoding);
            }

            if (i == 0)
            {
                lock (times0)
                {
                    times0.Add(clock.Elapsed.TotalSeconds);
                }

                piece.Release();
            }
        }, stop.Token))).ToArray();
        while (Volatile.Read(ref decoding) < Others)
        {
            ThrowIfEnded(others);
            piece.Wait(5);
        }

        // The next piece of the first client marks a step boundary (as seen here); the late request goes out a phase of a step after it.
        while (piece.CurrentCount > 0)
        {
            piece.Wait(0);
        }

        ThrowIfEnded(others);
        piece.Wait();
        double step;
        lock (times0)
        {
            step = LoadBench.Percentile(times0.Zip(times0.Skip(1), (a, b) => b - a), 50);
        }

        if (phase > 0)
        {
            Thread.Sleep(TimeSpan.FromSeconds(phase * step));
        }

        var late = StreamingClient.RunAsync(http, clock, latePrompt, prompts[latePrompt], 2, timings: true).GetAwaiter().GetResult();
        stop.Cancel();
        try
        {
            Task.WaitAll(others);
        }
        catch (AggregateException e) when (e.InnerExceptions.All(x => x is OperationCanceledException or HttpRequestException or IOException))
        {
        }

        Thread.Sleep(200);   // the others' slots free up
        return new Trial(phase, alone, late);
    }

    private static void ThrowIfEnded(Task<ClientRun>[] others)
    {
        if (others.FirstOrDefault(x => x.IsCompleted) is { } ended)
        {
            throw new InvalidOperationException("a request meant to be decoding while another arrives ended first.", ended.Exception);
        }
    }

    private static double T(ClientRun run, string name) => run.Timings is { } t && t.TryGetValue(name, out double v) ? v : double.NaN;

    private static double Mean(List<double> values) => values.Any(v => !double.IsNaN(v)) ? values.Where(v => !double.IsNaN(v)).Average() : double.NaN;

    private static int Gcd(int a, int b) => b == 0 ? a : Gcd(b, a % b);
}

using System.Diagnostics;
using System.Globalization;
using OnnxGpt.Cli.Benchmarking;
using OnnxGpt.Runtime.Batching;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Providers;

namespace OnnxGpt.Bench.Engine;

/// <summary>
/// <c>onnxgpt-bench engine</c>: the batch engine in process, without HTTP, so that what a batch of N rows gains over
/// one row is the model's and the engine's alone. For each model folder and each row count N, N greedy requests of
/// the same length are submitted at once (their prompts prefilled together, then decoded together to the end, the
/// end-of-text token ignored) and the aggregate decode speed is every request's tokens after its first over the time
/// from the first first token to the last token. Passes alternate the order of the row counts; ratios are N rows ÷
/// one row within each pass. With <c>--ort-profile</c>, one more run per model and row count under ONNX Runtime's
/// profiler gives the kernel time per operator of its decoding steps.
/// </summary>
public static class EngineBench
{
    public const string Usage = """
        usage: onnxgpt-bench engine --model DIR[,DIR...] [--rows 1,8] [--prompt-tokens 16] [--new-tokens 64] [--passes 3]
                                    [--threads 2] [--slot-tokens N] [--ort-profile PREFIX]
          The batch engine in process (no HTTP): N requests at once, greedy, decoded together; prints aggregate decode
          tokens/s per row count and the ratio to one row, per pass; --ort-profile: the kernel time per operator of the
          decoding steps at each row count (traces PREFIX_<model>_<rows>_*.json); --slot-tokens: tokens per slot
          (default: the model's context).
        """;

    public static int Run(string[] args)
    {
        string[] models = [];
        int[] rows = [1, 8];
        int promptTokens = 16, newTokens = 64, passes = 3, threads = 2, slotTokens = 0;
        string? profile = null;
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i];
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{name} needs a value.");
            int Int() => int.TryParse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v > 0
                ? v : throw new ArgumentException($"{name} needs a positive integer.");
            switch (name)
            {
                case "--model": models = Value().Split(','); break;
                case "--rows": rows = [.. Value().Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))]; break;
                case "--prompt-tokens": promptTokens = Int(); break;
                case "--new-tokens": newTokens = Int(); break;
                case "--passes": passes = Int(); break;
                case "--threads": threads = Int(); break;
                case "--slot-tokens": slotTokens = Int(); break;
                case "--ort-profile": profile = Value(); break;
                default: throw new ArgumentException($"unknown option '{name}'.\n{Usage}");
            }
        }

        if (models.Length == 0 || rows.Any(r => r <= 0))
        {
            throw new ArgumentException($"--model DIR is required and every --rows count must be positive.\n{Usage}");
        }

        var settings = new SessionSettings { Providers = [new CpuProvider(threads)] };
        Console.WriteLine($"batch engine in process: rows {string.Join(",", rows)}; {promptTokens}-token prompts, {newTokens} new tokens, greedy; {threads} threads; {passes} passes; " +
            $"slots of {(slotTokens == 0 ? "the whole context" : $"{slotTokens} tokens")}");
        foreach (string folder in models)
        {
            string label = Path.GetFileName(Path.TrimEndingDirectorySeparator(folder));
            var ratios = rows.ToDictionary(r => r, _ => new List<double>());
            using (var model = GptModel.Load(folder, settings))
            using (var engine = StartEngine(model, rows.Max(), slotTokens))
            {
                Measure(engine, 1, promptTokens, 8);   // warm-up
                for (int pass = 0; pass < passes; pass++)
                {
                    var order = pass % 2 == 0 ? rows : [.. rows.Reverse()];
                    var speeds = order.ToDictionary(r => r, r => Measure(engine, r, promptTokens, newTokens));
                    double one = speeds.GetValueOrDefault(1, double.NaN);
                    foreach (int r in rows)
                    {
                        ratios[r].Add(speeds[r] / one);
                    }

                    Console.WriteLine($"{label} pass {pass + 1}: " + string.Join("; ", rows.Select(r =>
                        $"{r} rows {speeds[r]:F1} tok/s ({speeds[r] / r:F1} each, {speeds[r] / one:F2}× one row)")));
                }
            }

            Console.WriteLine($"{label}: aggregate decode ÷ one row, median of {passes} passes: " +
                string.Join(", ", rows.Select(r => $"{r} rows {Median(ratios[r]):F2} [{ratios[r].Min():F2}–{ratios[r].Max():F2}]")));
            if (profile is not null)
            {
                foreach (int r in rows)
                {
                    Profile(folder, settings, label, r, promptTokens, newTokens, slotTokens, profile);
                }
            }
        }

        return 0;
    }

    private static BatchEngine StartEngine(GptModel model, int slots, int slotTokens) => BatchEngine.Start(model, new BatchEngineOptions
    {
        Slots = slots,
        SlotTokens = slotTokens,
        MaxIdleConversations = 0,   // every request is fed in full
        StopAtEndOfSequence = false,
        DecodeText = false,
    });

    /// <summary><paramref name="rows"/> requests at once; their aggregate decode tokens/s.</summary>
    private static double Measure(BatchEngine engine, int rows, int promptTokens, int newTokens)
    {
        int vocab = engine.Model.Config.VocabSize;
        var options = new GenerationOptions { DoSample = false, MaxNewTokens = newTokens };
        var requests = Enumerable.Range(0, rows)
            .Select(r => engine.Submit([.. Enumerable.Range(0, promptTokens).Select(i => (int)((uint)(r * 7919 + i * 104729 + 13) % (uint)vocab))], options))
            .ToArray();
        Task.WaitAll([.. requests.Select(q => q.Completion)]);
        long first = requests.Min(q => q.Timeline.FirstToken);
        long last = requests.Max(q => q.Timeline.Submitted + (long)(q.Result!.Elapsed.TotalSeconds * Stopwatch.Frequency));
        int tokens = requests.Sum(q => q.Result!.NewTokens - 1);
        return tokens / Stopwatch.GetElapsedTime(first, last).TotalSeconds;
    }

    private static void Profile(string folder, SessionSettings settings, string label, int rows, int promptTokens, int newTokens, int slotTokens, string prefix)
    {
        string path = $"{prefix}_{label}_{rows}";
        using (var model = GptModel.Load(folder, settings with { ProfileOutputPrefix = path }))
        using (var engine = StartEngine(model, rows, slotTokens))
        {
            Measure(engine, rows, promptTokens, newTokens);
        }

        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var file = new DirectoryInfo(dir).GetFiles(Path.GetFileName(path) + "_*.json").MaxBy(f => f.LastWriteTimeUtc)
            ?? throw new InvalidOperationException($"ONNX Runtime wrote no {path}_*.json");
        Console.WriteLine($"{label}, {rows} rows: ONNX Runtime profile {file.FullName}: kernel time per operator, mean per run");
        Console.Write(OrtProfile.Summarize(file.FullName, [promptTokens]));
    }

    private static double Median(List<double> values) => OnnxGpt.Cli.Benchmarking.SampleStatistics.Median(values);
}

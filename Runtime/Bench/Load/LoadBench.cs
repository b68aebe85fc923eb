using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Bench.Load;

/// <summary>
/// <c>onnxgpt-bench load</c>: the server under N concurrent streaming clients, per variant, in passes; llama.cpp's
/// batched decoding between the passes. Prints the figures, the ratios and the checks, writes results.json and a
/// throughput chart.
/// </summary>
public static class LoadBench
{
    public static int Run(string[] args)
    {
        LoadOptions o;
        try
        {
            o = LoadOptions.Parse(args);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"onnxgpt-bench load: {e.Message}");
            Console.Error.WriteLine(LoadOptions.Usage);
            return 2;
        }

        Directory.CreateDirectory(o.Work);
        if (o.Replot is { } saved)
        {
            Replot(o, saved);
            return 0;
        }

        var config = GptPresets.Get(o.Preset);
        int maxClients = o.Clients.Max();
        int slots = Math.Max(maxClients, LateArrival.Others + 1), latePrompt = slots;
        var prompts = Prompts(slots + 1, o.PromptTokens, o.Seed);
        Console.WriteLine($"model: {o.Preset} ({config.ParameterCount:N0} parameters, seeded GPT-2 initialisation, seed {o.Seed}); {o.Threads} threads; " +
            $"clients {(o.LateOnly ? "none (--late-only)" : string.Join(",", o.Clients))}; {o.PromptTokens}-token prompts, {o.NewTokens} new tokens, greedy; {o.Passes} passes; " +
            $"late-arrival trials {o.LateTrials}; server slots {slots}");
        var folders = o.Variants.ToDictionary(v => v, v => EnsureExported(o, v));

        var runs = new List<(string Variant, int Pass, int Clients, List<ClientRun> Clients2, double PeakMiB)>();
        var solo = new Dictionary<string, List<ClientRun>>();
        var late = new Dictionary<string, List<LateArrival.Trial>>();
        var engineLines = new Dictionary<string, string>();
        Dictionary<string, Dictionary<int, List<double>>>? llama = null;
        for (int pass = 0; pass < o.Passes; pass++)
        {
            foreach (var variant in pass % 2 == 0 ? o.Variants : o.Variants.Reverse())
            {
                using var server = ServerProcess.Start(o, folders[variant], slots);
                using var http = new HttpClient { BaseAddress = new Uri(server.Url), Timeout = TimeSpan.FromMinutes(10) };
                WarmUp(http, prompts, o);
                if (o.LateOnly)
                {
                    // Every pass adds its trials: the passes alternate the exports, so both see the machine's drift.
                    var trials = LateArrival.Measure(http, prompts, latePrompt, o.NewTokens, o.LateTrials);
                    late[variant] = [.. late.GetValueOrDefault(variant) ?? [], .. trials];
                    LateArrival.Report($"  pass {pass + 1} {variant}", trials);
                    server.Stop();
                    continue;
                }

                if (pass == 0)
                {
                    solo[variant] = Solo(http, prompts, maxClients, o);
                    Console.WriteLine($"  {variant}: solo runs of {maxClients} prompts: TTFT p50 {1000 * Percentile(solo[variant].Select(r => r.TimeToFirstToken), 50):F0} ms, " +
                        $"{Percentile(solo[variant].Select(r => r.TokensPerSecond), 50):F1} tok/s");
                    late[variant] = LateArrival.Measure(http, prompts, latePrompt, o.NewTokens, o.LateTrials);
                }

                foreach (int n in o.Clients)
                {
                    var clients = Concurrent(http, prompts, n, o.NewTokens);
                    double peak = server.PeakWorkingSetMiB;
                    runs.Add((variant, pass, n, clients, peak));
                    var s = Summarize(clients);
                    int same = clients.Count(c => c.Text == solo[variant][c.Prompt].Text);
                    Console.WriteLine($"  pass {pass + 1} {variant,-6} N={n,2}: aggregate {s.Generated,6:F1} tok/s generated, {s.Decode,6:F1} decode; per client {s.PerClient,5:F1}; " +
                        $"TTFT p50/p95 {1000 * s.TtftP50:F0}/{1000 * s.TtftP95:F0} ms; ITL p50/p95 {1000 * s.ItlP50:F1}/{1000 * s.ItlP95:F1} ms; peak {peak:F0} MiB; same text as solo {same}/{n}");
                }

                server.Stop();
                engineLines[variant] = server.Output.LastOrDefault(l => l.Contains("batch engine:", StringComparison.Ordinal) && l.Contains("steps", StringComparison.Ordinal)) ?? "(no engine counters)";
            }

            if (pass == 0 && o.LlamaBench is not null && !o.LateOnly)
            {
                llama = RunLlamaBench(o);
            }
        }

        if (o.LateOnly)
        {
            Console.WriteLine();
            foreach (var variant in o.Variants)
            {
                LateArrival.Report(variant, late[variant]);
            }

            File.WriteAllText(Path.Combine(o.Work, "late-results.json"), JsonSerializer.Serialize(late, ResultsJson));
            Console.WriteLine($"results written to {Path.Combine(o.Work, "late-results.json")}");
            return 0;
        }

        Report(o, runs, solo, late, engineLines, llama);
        return 0;
    }

    /// <summary>
    /// The variant's model folder in the work folder, exported by <c>onnxgpt export</c> unless a folder from the same
    /// build of the exporter is there (the stamp is the exporter assembly's module version id).
    /// </summary>
    private static string EnsureExported(LoadOptions o, string variant)
    {
        string folder = Path.Combine(o.Work, $"{o.Preset}-seed{o.Seed}-{variant}");
        string stampPath = Path.Combine(folder, ".load-export-stamp");
        string stamp = $"{typeof(OnnxGpt.Exporter.GptExporter).Assembly.ManifestModule.ModuleVersionId} {variant}";
        if (File.Exists(Path.Combine(folder, ModelFolder.ModelFile)) && File.Exists(stampPath) && File.ReadAllText(stampPath) == stamp)
        {
            return folder;
        }

        string[] graph = variant switch
        {
            "portable" => ["--graph", "portable"],
            "fused" => ["--graph", "fused"],
            "int8" => ["--graph", "fused", "--quantize", "int8"],
            "int4" => ["--graph", "fused", "--quantize", "int4"],
            _ => throw new ArgumentException($"--variants: unknown variant '{variant}'; expected portable, fused, int8 or int4."),
        };
        Console.WriteLine($"exporting {o.Preset} seed {o.Seed} as {variant} to {folder}");
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false };
        foreach (var a in (string[])[o.Onnxgpt, "export", "--preset", o.Preset, "--seed", o.Seed.ToString(CultureInfo.InvariantCulture), .. graph, "--out", folder, "--force"])
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start)!;
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"onnxgpt export of {variant} failed (exit {process.ExitCode}).");
        }

        File.WriteAllText(stampPath, stamp);
        return folder;
    }

    /// <summary>Prompts of exactly <paramref name="tokens"/> GPT-2 tokens: words drawn with a seed, re-drawn until the count is exact.</summary>
    internal static string[] Prompts(int count, int tokens, ulong seed)
    {
        var tokenizer = TokenizerFactory.Create(TokenizerDetection.Detect(null, 50257)!);
        var random = new Random((int)(seed * 7919 % int.MaxValue));
        var prompts = new string[count];
        for (int i = 0; i < count; i++)
        {
            while (true)
            {
                // Ids of ordinary words (GPT-2's vocabulary puts its frequent words early).
                var ids = Enumerable.Range(0, tokens).Select(_ => random.Next(300, 20000)).ToArray();
                string text = tokenizer.Decode(ids);
                if (tokenizer.Encode(text).Length == tokens && !prompts.Contains(text))
                {
                    prompts[i] = text;
                    break;
                }
            }
        }

        return prompts;
    }

    private static void WarmUp(HttpClient http, string[] prompts, LoadOptions o)
    {
        // JIT and first-run costs on both sides: one request alone, then a batch, before anything is timed.
        var clock = Stopwatch.StartNew();
        StreamingClient.RunAsync(http, clock, 0, prompts[0], 16).GetAwaiter().GetResult();
        Task.WaitAll([.. Enumerable.Range(0, Math.Min(4, prompts.Length)).Select(i => StreamingClient.RunAsync(http, clock, i, prompts[i], 32))]);
    }

    private static List<ClientRun> Solo(HttpClient http, string[] prompts, int count, LoadOptions o)
    {
        var clock = Stopwatch.StartNew();
        return [.. Enumerable.Range(0, count).Select(i => StreamingClient.RunAsync(http, clock, i, prompts[i], o.NewTokens).GetAwaiter().GetResult())];
    }

    private static List<ClientRun> Concurrent(HttpClient http, string[] prompts, int n, int newTokens)
    {
        var clock = Stopwatch.StartNew();
        var tasks = Enumerable.Range(0, n).Select(i => Task.Run(() => StreamingClient.RunAsync(http, clock, i, prompts[i], newTokens))).ToArray();
        Task.WaitAll(tasks);
        return [.. tasks.Select(t => t.Result)];
    }

    private static Dictionary<string, Dictionary<int, List<double>>> RunLlamaBench(LoadOptions o)
    {
        var parallel = o.Clients.Where(n => n is 1 or 4 or 8 or 16).ToArray();
        Console.WriteLine($"  llama.cpp: llamabench --parallel {string.Join(',', parallel)} (f32, q4_0; {o.Passes} repetitions)");
        var (results, stdout) = ExecuteLlamaBench(o.LlamaBench!, Path.Combine(o.Work, "llamabench"),
            "--variants", "f32,q4_0", "--reps", o.Passes.ToString(CultureInfo.InvariantCulture), "--threads", o.Threads.ToString(CultureInfo.InvariantCulture),
            "--bw", "0", "--parallel", string.Join(',', parallel));
        using var json = results;
        foreach (var line in stdout.Split('\n').Where(l => l.Contains("parallel", StringComparison.Ordinal) && l.Contains("aggregate", StringComparison.Ordinal)))
        {
            Console.WriteLine("   " + line.Trim());
        }

        var byType = new Dictionary<string, Dictionary<int, List<double>>>();
        foreach (var v in json.RootElement.GetProperty("variants").EnumerateArray())
        {
            var rates = new Dictionary<int, List<double>>();
            foreach (var p in v.GetProperty("parallel_aggregate_decode_tps").EnumerateObject())
            {
                rates[int.Parse(p.Name, CultureInfo.InvariantCulture)] = [.. p.Value.GetProperty("tps").EnumerateArray().Select(x => x.GetDouble())];
            }

            byType[v.GetProperty("variant").GetString()!] = rates;
        }

        return byType;
    }

    /// <summary>Runs the llamabench tool in <paramref name="work"/>; returns its results.json and what it printed.</summary>
    private static (JsonDocument Results, string Output) ExecuteLlamaBench(string tool, string work, params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in (string[])[tool, "--work", work, .. arguments])
        {
            start.ArgumentList.Add(a);
        }

        string results = Path.Combine(work, "results.json");
        File.Delete(results);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0 || !File.Exists(results))
        {
            throw new InvalidOperationException($"llamabench failed (exit {process.ExitCode}, no {results}): {stderr.Result}{stdout}");
        }

        return (JsonDocument.Parse(File.ReadAllText(results)), stdout);
    }

    /// <summary>The figures of one run of N clients.</summary>
    internal static (double Generated, double Decode, double PerClient, double TtftP50, double TtftP95, double ItlP50, double ItlP95) Summarize(List<ClientRun> clients)
    {
        double start = clients.Min(c => c.Submitted), firstToken = clients.Min(c => c.FirstToken), end = clients.Max(c => c.LastToken);
        int tokens = clients.Sum(c => c.Tokens);
        var gaps = clients.SelectMany(c => c.Gaps).ToList();
        return (tokens / (end - start), clients.Sum(c => c.Tokens - 1) / (end - firstToken), Percentile(clients.Select(c => c.TokensPerSecond), 50),
            Percentile(clients.Select(c => c.TimeToFirstToken), 50), Percentile(clients.Select(c => c.TimeToFirstToken), 95),
            Percentile(gaps, 50), Percentile(gaps, 95));
    }

    internal static double Percentile(IEnumerable<double> values, double p)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToList();
        if (sorted.Count == 0)
        {
            return double.NaN;
        }

        double rank = p / 100 * (sorted.Count - 1);
        int low = (int)Math.Floor(rank), high = (int)Math.Ceiling(rank);
        return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
    }

    private static void Report(LoadOptions o, List<(string Variant, int Pass, int Clients, List<ClientRun> Clients2, double PeakMiB)> runs,
        Dictionary<string, List<ClientRun>> solo, Dictionary<string, List<LateArrival.Trial>> late, Dictionary<string, string> engineLines,
        Dictionary<string, Dictionary<int, List<double>>>? llama)
    {
        static string F(double v, string f) => double.IsNaN(v) ? "–" : v.ToString(f, CultureInfo.InvariantCulture);
        Console.WriteLine();
        Console.WriteLine($"Medians over {o.Passes} passes (each pass: every client count in turn, on a server started for the variant).");
        Console.WriteLine("| variant | clients | aggregate generated tok/s | aggregate decode tok/s | per-client tok/s | TTFT p50 ms | TTFT p95 ms | ITL p50 ms | ITL p95 ms | peak working set MiB | same text as solo |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        var decode = new Dictionary<(string, int), List<double>>();
        foreach (var group in runs.GroupBy(r => (r.Variant, r.Clients)))
        {
            var sums = group.Select(r => Summarize(r.Clients2)).ToList();
            var all = group.SelectMany(r => r.Clients2).ToList();
            var gaps = all.SelectMany(c => c.Gaps).ToList();
            decode[group.Key] = [.. sums.Select(s => s.Decode)];
            int same = all.Count(c => c.Text == solo[group.Key.Variant][c.Prompt].Text);
            Console.WriteLine($"| {group.Key.Variant} | {group.Key.Clients} | {F(Median(sums.Select(s => s.Generated)), "F1")} | {F(Median(sums.Select(s => s.Decode)), "F1")} | " +
                $"{F(Median(sums.Select(s => s.PerClient)), "F1")} | {F(1000 * Percentile(all.Select(c => c.TimeToFirstToken), 50), "F0")} | {F(1000 * Percentile(all.Select(c => c.TimeToFirstToken), 95), "F0")} | " +
                $"{F(1000 * Percentile(gaps, 50), "F1")} | {F(1000 * Percentile(gaps, 95), "F1")} | {F(group.Max(r => r.PeakMiB), "F0")} | {same}/{all.Count} |");
        }

        Console.WriteLine();
        foreach (var variant in o.Variants)
        {
            // Within each pass, N clients against one alone; then the median over passes.
            foreach (int n in o.Clients.Where(n => n > 1))
            {
                var ratios = runs.Where(r => r.Variant == variant && r.Clients == n)
                    .Join(runs.Where(r => r.Variant == variant && r.Clients == 1), r => r.Pass, r => r.Pass, (a, b) => Summarize(a.Clients2).Decode / Summarize(b.Clients2).Decode).ToList();
                Console.WriteLine($"{variant}: aggregate decode with {n,2} clients ÷ 1 client = {Median(ratios):F2} [{ratios.Min():F2}–{ratios.Max():F2}]");
            }

            string type = variant == "int4" ? "q4_0" : "f32";
            if (llama is not null && llama.TryGetValue(type, out var rates))
            {
                foreach (var (n, tps) in rates.OrderBy(kv => kv.Key))
                {
                    if (decode.TryGetValue((variant, n), out var ours))
                    {
                        Console.WriteLine($"{variant}: aggregate decode with {n,2} clients over HTTP ÷ llama.cpp {type} --parallel {n,2} = {Median(ours) / Median(tps):F2} " +
                            $"(ours {Median(ours):F1}, llama.cpp {Median(tps):F1} tok/s)");
                    }
                }
            }

            LateArrival.Report(variant, late[variant]);
            Console.WriteLine($"{variant}: {engineLines[variant]}");
        }

        string chart = o.Chart ?? Path.Combine(o.Work, "throughput.png");
        ThroughputChart.Write(chart, o, decode, llama);
        Console.WriteLine($"chart written to {chart}");
        File.WriteAllText(Path.Combine(o.Work, "load-results.json"), JsonSerializer.Serialize(new
        {
            o.Preset, o.Seed, o.Threads, o.PromptTokens, o.NewTokens, o.Passes,
            runs = runs.Select(r => new { r.Variant, r.Pass, r.Clients, r.PeakMiB, clients = r.Clients2 }),
            late,
            llama,
        }, ResultsJson));
        Console.WriteLine($"results written to {Path.Combine(o.Work, "load-results.json")}");
    }

    private static double Median(IEnumerable<double> values) => Percentile(values, 50);

    private static readonly JsonSerializerOptions ResultsJson = new()
    {
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Draws the chart again from a run's load-results.json.</summary>
    private static void Replot(LoadOptions o, string path)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(path));
        var root = json.RootElement;
        var decode = new Dictionary<(string, int), List<double>>();
        foreach (var run in root.GetProperty("runs").EnumerateArray())
        {
            var clients = run.GetProperty("clients").Deserialize<List<ClientRun>>(new JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals })!;
            var key = (run.GetProperty("Variant").GetString()!, run.GetProperty("Clients").GetInt32());
            if (!decode.TryGetValue(key, out var list))
            {
                decode[key] = list = [];
            }

            list.Add(Summarize(clients).Decode);
        }

        Dictionary<string, Dictionary<int, List<double>>>? llama = root.TryGetProperty("llama", out var l) && l.ValueKind == JsonValueKind.Object
            ? l.Deserialize<Dictionary<string, Dictionary<int, List<double>>>>() : null;
        var variants = decode.Keys.Select(k => k.Item1).Distinct().ToArray();
        var counts = decode.Keys.Select(k => k.Item2).Distinct().Order().ToArray();
        string chart = o.Chart ?? Path.Combine(o.Work, "throughput.png");
        ThroughputChart.Write(chart, o with { Variants = variants, Clients = counts, NewTokens = root.GetProperty("NewTokens").GetInt32(), Preset = root.GetProperty("Preset").GetString()!, Threads = root.GetProperty("Threads").GetInt32() }, decode, llama);
        Console.WriteLine($"chart written to {chart}");
    }
}

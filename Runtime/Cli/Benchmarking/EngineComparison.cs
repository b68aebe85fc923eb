using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter;

using OnnxGpt.Cli.Progress;

namespace OnnxGpt.Cli.Benchmarking;

/// <summary>
/// Runs engines side by side on the same exported folders: our host, ONNX Runtime GenAI where the bench build adds
/// it, and llama.cpp through llamabench. Each measurement runs in its own child process (so load time and peak memory
/// belong to one engine), engines alternate within every repetition, and the table reports medians together with the
/// DRAM bandwidth measured in the same run.
/// </summary>
internal sealed class EngineComparison(ComparisonSettings o, TextWriter stdout)
{
    private const string ResultPrefix = "RESULT ";

    /// <summary>Every repetition of every engine and variant, then the table and results.json.</summary>
    public int RunAll()
    {
        _checkpoint = o.Checkpoint is { } path ? CheckpointLoader.Load(path) : null;
        var config = _checkpoint?.Config ?? (o.ConfigFile is { } file ? GptConfig.FromFile(file) : GptPresets.Get(o.Preset));
        stdout.WriteLine($"model: {o.ModelName} ({config.ParameterCount:N0} parameters, " +
            $"{(_checkpoint is null ? $"seeded initialisation, seed {o.Seed}" : "checkpoint")}); " +
            $"{o.Threads} threads; prompt {o.Prompt} tokens; decode at contexts {string.Join(", ", o.Contexts)}; {o.Reps} repetitions");
        foreach (int c in o.Contexts)
        {
            // As each child checks, but before anything is exported.
            if (c + 2 + 2 + 4 > config.ContextLength)
            {
                throw new CliUsageException($"--contexts: context {c} leaves no room to time decoding within {o.ModelName}'s {config.ContextLength} positions.");
            }
        }

        if (o.Prompt + 2 > config.ContextLength)
        {
            throw new CliUsageException($"--prompt: {o.Prompt} tokens and the first token do not fit {o.ModelName}'s {config.ContextLength} positions.");
        }

        Directory.CreateDirectory(o.Work);
        var folders = o.Variants.ToDictionary(v => v, v => EnsureExported(config, v));
        double bandwidthBefore = Bandwidth.MeasureGBps(o.Threads);
        stdout.WriteLine($"DRAM read bandwidth ({o.Threads} threads, best of 5 over 1 GiB): {bandwidthBefore:F1} GB/s");

        var results = new List<EngineMeasurement>();
        IReadOnlyList<string> engines = o.LlamaBench is null ? o.Engines : [.. o.Engines, LlamaBenchRunner.EngineName];
        for (int rep = 0; rep < o.Reps; rep++)
        {
            // Engines alternate in order from one repetition to the next, so drift on the machine hits each alike.
            foreach (var engine in rep % 2 == 0 ? engines : engines.AsEnumerable().Reverse())
            {
                if (engine == LlamaBenchRunner.EngineName)
                {
                    foreach (var m in LlamaBenchRunner.Run(o, o.Variants, bandwidthBefore))
                    {
                        Report(rep, m);
                        results.Add(m with { Repetition = rep });
                    }

                    continue;
                }

                foreach (var variant in o.Variants)
                {
                    if (IsFloat16Cache(variant) && engine != BenchEngines.OnnxGpt)
                    {
                        continue;   // OnnxGpt's own attention operator: only our host loads these exports
                    }

                    var m = RunChildProcess(o, engine, variant, folders[variant]);
                    Report(rep, m);
                    results.Add(m with { Repetition = rep });
                }
            }
        }

        void Report(int rep, EngineMeasurement m) => stdout.WriteLine($"  rep {rep + 1} {m.Variant,-8} {m.Engine,-9} prompt {m.PromptTokensPerSecond,6:F0} tok/s  " +
            string.Join("  ", m.DecodeTokensPerSecond.Select(kv => $"@{kv.Key} {kv.Value:F1} tok/s")) +
            (m.WarmUpTokens > 0 ? $"  (warm-up {m.WarmUpTokens} tokens; JIT while timing {m.JitMsWhileTiming.Values.Sum():F0} ms)" : ""));

        double bandwidthAfter = Bandwidth.MeasureGBps(o.Threads);
        double bandwidth = (bandwidthBefore + bandwidthAfter) / 2;
        stdout.WriteLine($"DRAM read bandwidth after: {bandwidthAfter:F1} GB/s; the bound below uses the mean, {bandwidth:F1} GB/s");
        stdout.WriteLine();
        PrintTable(engines, results, folders, bandwidth);
        File.WriteAllText(Path.Combine(o.Work, "results.json"), JsonSerializer.Serialize(new
        {
            model = o.ModelName, o.Seed, o.Threads, o.Prompt, o.Contexts, bandwidth_gbps = bandwidth, results,
        }, new JsonSerializerOptions { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
        stdout.WriteLine($"results written to {Path.Combine(o.Work, "results.json")}");
        return 0;
    }

    private void PrintTable(IReadOnlyList<string> engines, List<EngineMeasurement> results, Dictionary<string, string> folders, double bandwidth)
    {
        var header = $"| variant | engine | load s | prompt {o.Prompt} tok/s | TTFT ms | " +
            string.Join(" | ", o.Contexts.Select(c => $"decode @{c} tok/s")) +
            " | peak MiB | managed B/token | weights read/token MB | bandwidth bound tok/s | @" + o.Contexts[0] + " ÷ bound |";
        stdout.WriteLine(header);
        stdout.WriteLine("|" + string.Concat(Enumerable.Repeat("---|", header.Count(ch => ch == '|') - 1)));
        static string F(double value, string format) => double.IsNaN(value) ? "–" : value.ToString(format, CultureInfo.InvariantCulture);
        foreach (var variant in o.Variants)
        {
            double weightBytes = WeightBytesPerToken(folders[variant]);
            double bound = bandwidth * 1e9 / weightBytes;
            foreach (var engine in engines)
            {
                if (!results.Any(r => r.Variant == variant && r.Engine == engine))
                {
                    continue;
                }

                string label = engine == LlamaBenchRunner.EngineName ? $"{engine} {LlamaBenchRunner.Counterpart(variant)}" : engine;
                double M(Func<EngineMeasurement, double> f) => Median(results, variant, engine, f);
                var decode = o.Contexts.Select(c => M(r => Decode(r, c))).ToList();
                stdout.WriteLine($"| {variant} | {label} | {F(M(r => r.LoadSeconds), "F2")} | {F(M(r => r.PromptTokensPerSecond), "F0")} | " +
                    $"{F(M(r => r.TimeToFirstTokenMs), "F0")} | {string.Join(" | ", decode.Select(d => F(d, "F1")))} | " +
                    $"{F(M(r => r.PeakWorkingSetMiB), "F0")} | {F(M(r => r.ManagedBytesPerToken.GetValueOrDefault(o.Contexts[0], double.NaN)), "F0")} | " +
                    $"{weightBytes / 1e6:F1} | {bound:F1} | {F(decode[0] / bound, "F2")} |");
            }
        }

        stdout.WriteLine();
        string ours = o.Engines[0];
        foreach (var variant in o.Variants)
        {
            foreach (var other in engines.Skip(1))
            {
                var parts = new List<string>();
                foreach (int c in o.Contexts)
                {
                    double ratio = Median(results, variant, ours, r => Decode(r, c)) / Median(results, variant, other, r => Decode(r, c));
                    if (!double.IsNaN(ratio))
                    {
                        parts.Add($"decode @{c} {ratio:F2}");
                    }
                }

                // llamabench's prompt is always 512 tokens: compare prompts only when ours is too.
                bool promptComparable = other != LlamaBenchRunner.EngineName || o.Prompt == 512;
                double prompt = Median(results, variant, ours, r => r.PromptTokensPerSecond) / Median(results, variant, other, r => r.PromptTokensPerSecond);
                if (promptComparable && !double.IsNaN(prompt))
                {
                    parts.Add($"prompt {prompt:F2}");
                }

                if (parts.Count > 0)
                {
                    stdout.WriteLine($"{variant}: {ours} ÷ {other}: {string.Join(", ", parts)}");
                }

                // Paired: the ratio within each repetition (the two ran back to back), then the median over
                // repetitions. On a machine that drifts between states this is steadier than a ratio of medians.
                var paired = new List<string>();
                foreach (int c in o.Contexts)
                {
                    if (Paired(results, variant, ours, other, r => Decode(r, c)) is { } p)
                    {
                        paired.Add($"decode @{c} {p.Median:F2} [{p.Low:F2}–{p.High:F2}]");
                    }
                }

                if (promptComparable && Paired(results, variant, ours, other, r => r.PromptTokensPerSecond) is { } pp)
                {
                    paired.Add($"prompt {pp.Median:F2} [{pp.Low:F2}–{pp.High:F2}]");
                }

                if (paired.Count > 0)
                {
                    stdout.WriteLine($"{variant}: {ours} ÷ {other}, median of per-repetition ratios [range]: {string.Join(", ", paired)}");
                }
            }
        }

        foreach (var engine in o.Engines)
        {
            foreach (var variant in o.Variants.Where(v => results.Any(r => r.Variant == v && r.Engine == engine)))
            {
                double first = Median(results, variant, engine, r => Decode(r, o.Contexts[0]));
                double last = Median(results, variant, engine, r => Decode(r, o.Contexts[^1]));
                stdout.WriteLine($"{engine} {variant}: decode @{o.Contexts[^1]} ÷ decode @{o.Contexts[0]} = {last / first:F2}");
            }
        }

        if (o.Variants.Contains("int4") && o.Variants.Contains("fused"))
        {
            stdout.WriteLine($"{ours}: int4 decode @{o.Contexts[0]} ÷ fused (fp32) decode @{o.Contexts[0]} = " +
                $"{Median(results, "int4", ours, r => Decode(r, o.Contexts[0])) / Median(results, "fused", ours, r => Decode(r, o.Contexts[0])):F2}");
        }
    }

    /// <summary>
    /// Decodes in chunks of 16 tokens after a short prompt until a chunk passes with no method compiled (at least
    /// 48 tokens, at most 512), restarting when the context fills; returns the tokens decoded.
    /// </summary>
    private static int WarmUpDecoding(IBenchEngine engine, int[] prompt, int context)
    {
        const int chunk = 16, least = 48, most = 512;
        int room = context - prompt.Length - 2, done = 0, left = 0;
        while (done < most)
        {
            if (left < chunk)
            {
                engine.Start(prompt, Math.Min(context, prompt.Length + 1 + room));
                left = room;
            }

            long compiled = System.Runtime.JitInfo.GetCompiledMethodCount();
            for (int i = 0; i < chunk; i++)
            {
                engine.Next();
            }

            done += chunk;
            left -= chunk;
            if (done >= least && System.Runtime.JitInfo.GetCompiledMethodCount() == compiled)
            {
                break;
            }
        }

        return done;
    }

    /// <summary>Ratios a ÷ b within each repetition where both measured it: their median, lowest and highest.</summary>
    private static (double Median, double Low, double High)? Paired(List<EngineMeasurement> results, string variant, string a, string b, Func<EngineMeasurement, double> f)
    {
        var ratios = results.Where(r => r.Variant == variant && r.Engine == a)
            .Join(results.Where(r => r.Variant == variant && r.Engine == b), r => r.Repetition, r => r.Repetition, (x, y) => f(x) / f(y))
            .Where(v => !double.IsNaN(v)).Order().ToList();
        if (ratios.Count == 0)
        {
            return null;
        }

        return (SampleStatistics.Median(ratios), ratios[0], ratios[^1]);
    }

    private static double Decode(EngineMeasurement m, int context) => m.DecodeTokensPerSecond.GetValueOrDefault(context, double.NaN);

    /// <summary>The median over repetitions, NaN where the engine did not measure it.</summary>
    private static double Median(List<EngineMeasurement> results, string variant, string engine, Func<EngineMeasurement, double> f)
    {
        return SampleStatistics.Median(results.Where(r => r.Variant == variant && r.Engine == engine).Select(f).Where(v => !double.IsNaN(v)));
    }

    /// <summary>
    /// Bytes of weights one decoded token reads: every initializer but the position table (one row is read), and the
    /// float token table too when a quantized copy serves as the head (the float table then only gives one row).
    /// </summary>
    internal static double WeightBytesPerToken(string folder)
    {
        var info = ModelInspector.Open(folder);
        long Bytes(string name) => info.Model.Graph.Initializer.Where(t => t.Name == name)
            .Sum(t => t.RawData.Length + t.ExternalData.Where(e => e.Key == "length").Sum(e => long.Parse(e.Value, CultureInfo.InvariantCulture)));
        bool quantizedHead = info.Model.Graph.Initializer.Any(t => t.Name.StartsWith(TensorNames.Wte + ".q", StringComparison.Ordinal)
            || t.Name.StartsWith(TensorNames.LmHead + ".q", StringComparison.Ordinal));
        return info.ParameterBytes - Bytes(TensorNames.Wpe) - (quantizedHead && info.Model.Graph.Initializer.Any(t => t.Name == TensorNames.Wte) && GptConfig.FromJson(info.Metadata[MetadataKeys.Config]).TiedHead ? Bytes(TensorNames.Wte) : 0);
    }

    /// <summary>The weights of --checkpoint, exported instead of seeded ones.</summary>
    private GptWeights? _checkpoint;

    /// <summary>A variant exported with <c>--kv-cache fp16</c> (its name ends in <c>-kv16</c>).</summary>
    internal static bool IsFloat16Cache(string variant) => variant.EndsWith("-kv16", StringComparison.Ordinal);

    /// <summary>The variant's folder under the work folder, exported there first unless the same exporter build already did.</summary>
    internal string EnsureExported(GptConfig config, string variant)
    {
        string folder = Path.Combine(o.Work, $"{o.ModelName}-seed{o.Seed}-{variant}");
        // A folder exported by another build of the exporter is exported again: the stamp is the exporter
        // assembly's module version id, which a deterministic build changes exactly when the exporter's code changes.
        string stampPath = Path.Combine(folder, ".bench-export-stamp");
        string stamp = $"{typeof(GptExporter).Assembly.ManifestModule.ModuleVersionId} {variant} threads {o.Threads}";
        if (File.Exists(Path.Combine(folder, ModelFolder.ModelFile))
            && (IsFloat16Cache(variant) || File.Exists(Path.Combine(folder, ModelFolder.GenAiConfigFile)))
            && File.Exists(stampPath) && File.ReadAllText(stampPath) == stamp)
        {
            return folder;
        }

        var graph = variant switch
        {
            "portable" => GraphOptions.Portable,
            "decomposed" => new GraphOptions { DecomposedLlamaOperators = true },
            "fused" => new GraphOptions { Flavor = GraphFlavor.Fused },
            "int8" => new GraphOptions { Flavor = GraphFlavor.Fused, Quantization = WeightQuantization.Int8 },
            "int4" => new GraphOptions { Flavor = GraphFlavor.Fused, Quantization = WeightQuantization.Int4 },
            "fused-kv16" => new GraphOptions { Flavor = GraphFlavor.Fused, Float16Cache = true },
            "int4-kv16" => new GraphOptions { Flavor = GraphFlavor.Fused, Quantization = WeightQuantization.Int4, Float16Cache = true },
            _ => throw new CliUsageException($"--variants: unknown variant '{variant}'; expected portable, decomposed, fused, int8, int4, fused-kv16 or int4-kv16."),
        };
        stdout.WriteLine($"exporting {o.ModelName} as {variant} to {folder}");
        using (var progress = new ExportProgress(Console.Error, $"export {variant}"))
        {
            GptExporter.Export(_checkpoint ?? SeededInit.Create(config, o.Seed), folder, new ExportOptions
            {
                Force = true,
                Graph = graph,
                Tokenizer = TokenizerDetection.Detect(null, config.VocabSize),
                Source = _checkpoint is null ? $"{o.ModelName}, seeded initialisation with seed {o.Seed}" : o.Checkpoint,
            }, progress);
        }

        if (!IsFloat16Cache(variant))
        {
            SetGenAiThreads(folder, o.Threads);   // (a float16-cache export has no GenAI config: GenAI cannot run it)
        }

        File.WriteAllText(stampPath, stamp);
        return folder;
    }

    /// <summary>Both engines get the same intra-op thread count: GenAI reads it from its config's session options.</summary>
    private static void SetGenAiThreads(string folder, int threads)
    {
        string path = Path.Combine(folder, ModelFolder.GenAiConfigFile);
        var root = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!;
        root["model"]!["decoder"]!["session_options"]!["intra_op_num_threads"] = threads;
        File.WriteAllText(path, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
    }

    private static EngineMeasurement RunChildProcess(ComparisonSettings o, string engine, string variant, string folder)
    {
        var start = SelfStartInfo();
        foreach (var a in o.ChildArguments(engine, variant, folder))
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        var line = stdout.Split('\n').FirstOrDefault(l => l.StartsWith(ResultPrefix, StringComparison.Ordinal));
        if (process.ExitCode != 0 || line is null)
        {
            throw new OnnxGptException($"{engine} on {variant} failed (exit {process.ExitCode}): {stderr.Result}{stdout}");
        }

        return JsonSerializer.Deserialize<EngineMeasurement>(line[ResultPrefix.Length..])!;
    }

    /// <summary>
    /// This program again, as a child process: the tool or the bench build through its own executable, or through
    /// <c>dotnet</c> and its entry assembly; from a host that is neither (a test runner), the onnxgpt assembly.
    /// </summary>
    private static ProcessStartInfo SelfStartInfo()
    {
        var start = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        string process = Environment.ProcessPath ?? "dotnet";
        var entry = System.Reflection.Assembly.GetEntryAssembly();
        bool entryIsBench = entry is not null && entry.GetReferencedAssemblies().Any(a => a.Name == typeof(EngineComparison).Assembly.GetName().Name)
            || entry == typeof(EngineComparison).Assembly;
        if (Path.GetFileNameWithoutExtension(process) != "dotnet" && entryIsBench)
        {
            start.FileName = process;
            return start;
        }

        start.FileName = "dotnet";
        start.ArgumentList.Add(entryIsBench ? entry!.Location : typeof(EngineComparison).Assembly.Location);
        return start;
    }

    /// <summary>In a child process: measures one engine on one folder and writes the result as one JSON line.</summary>
    public static int RunChild(ComparisonSettings o, string engineName, string model, string variantName, TextWriter stdout)
    {
        var clock = Stopwatch.StartNew();
        using IBenchEngine engine = BenchEngines.Create(engineName, model, o.Threads);
        double load = clock.Elapsed.TotalSeconds;
        int context = GptConfig.FromJson(File.ReadAllText(Path.Combine(model, ModelFolder.ConfigFile))).ContextLength;
        var random = new Random(o.Seed == 0 ? 1 : (int)o.Seed);
        int vocab = GptConfig.FromJson(File.ReadAllText(Path.Combine(model, ModelFolder.ConfigFile))).VocabSize;
        int[] Prompt(int length) => Enumerable.Range(0, length).Select(_ => random.Next(vocab)).ToArray();

        // Prompt processing: the second of two runs (the first warms up kernels and allocations).
        double ttft = 0;
        for (int i = 0; i < 2; i++)
        {
            var prompt = Prompt(o.Prompt);
            clock.Restart();
            engine.Start(prompt, o.Prompt + 2);
            ttft = clock.Elapsed.TotalMilliseconds;
        }

        // Decoding warm-up, the same for every engine: a throwaway generation that runs until the .NET JIT has gone
        // quiet. Without it, the first context timed shares the two cores with the background compiler promoting
        // the host's hot methods (about 470 methods, 140–280 ms of JIT during the first 130 tokens of our host);
        // that is start-up cost, not decode speed.
        var jitClock = Stopwatch.StartNew();
        int warmUpTokens = WarmUpDecoding(engine, Prompt(16), context);
        double warmUpSeconds = jitClock.Elapsed.TotalSeconds;

        var decode = new Dictionary<int, double>();
        var bytes = new Dictionary<int, double>();
        var jitMs = new Dictionary<int, double>();
        const int warmUp = 2;
        foreach (int c in o.Contexts)
        {
            int tokens = Math.Min(o.NewTokens, context - c - warmUp - 2);
            if (tokens < 4)
            {
                throw new CliUsageException($"--contexts: context {c} leaves no room to time decoding within the model's {context} positions.");
            }

            engine.Start(Prompt(c), c + 1 + warmUp + tokens);
            for (int i = 0; i < warmUp; i++)
            {
                engine.Next();
            }

            var jitBefore = System.Runtime.JitInfo.GetCompilationTime();
            long before = GC.GetAllocatedBytesForCurrentThread();
            clock.Restart();
            for (int i = 0; i < tokens; i++)
            {
                engine.Next();
            }

            double seconds = clock.Elapsed.TotalSeconds;
            bytes[c] = (double)(GC.GetAllocatedBytesForCurrentThread() - before) / tokens;
            jitMs[c] = (System.Runtime.JitInfo.GetCompilationTime() - jitBefore).TotalMilliseconds;
            decode[c] = tokens / seconds;
        }

        using var self = Process.GetCurrentProcess();
        var m = new EngineMeasurement
        {
            Engine = engine.Name,
            Variant = variantName,
            LoadSeconds = load,
            TimeToFirstTokenMs = ttft,
            PromptTokens = o.Prompt,
            DecodeTokensPerSecond = decode,
            ManagedBytesPerToken = bytes,
            PeakWorkingSetMiB = self.PeakWorkingSet64 / 1048576.0,
            WarmUpTokens = warmUpTokens,
            WarmUpSeconds = warmUpSeconds,
            JitMsWhileTiming = jitMs,
        };
        stdout.WriteLine(ResultPrefix + JsonSerializer.Serialize(m));
        return 0;
    }
}

using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using OnnxGpt.Cli.Benchmarking;
using OnnxGpt.Cli.Options;
using OnnxGpt.Cli.Progress;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;

namespace OnnxGpt.Cli.Commands;

/// <summary>
/// <c>onnxgpt bench</c>: per prompt length, the time to first token, prompt processing speed, decoding speed after
/// the prompt, with and without the KV cache, and the managed bytes allocated per generated token. By default on
/// GPT-2 124M with seeded weights, exported once (portable or fused graph, float or quantized) to a cache folder.
/// The one benchmark front-end: <c>bench compare</c> puts engines side by side (see <see cref="BenchCompareCommand"/>);
/// further benchmarks are further subcommands here.
/// </summary>
internal sealed class BenchCommand : CliCommand
{
    private readonly Option<string?> _model = CliOption.Text("--model", "DIR", "benchmark this model folder", "--preset's export");

    private readonly Option<string?> _preset = CliOption.OptionalChoice("--preset",
        $"a preset with seeded weights, exported once into --cache-dir: {string.Join(", ", GptPresets.Names)}", "gpt2",
        [.. GptPresets.Names], helpName: "NAME");

    private readonly Option<long> _seed = CliOption.Long("--seed", "N", "seed of the preset's weights and of the prompts", 1, min: 0);

    private readonly Option<string?> _graph = CliOption.OptionalChoice("--graph", "how the preset is exported (as onnxgpt export)",
        "portable", ["portable", "fused"]);

    private readonly Option<string?> _quantize = CliOption.OptionalChoice("--quantize", "how the preset is exported (as onnxgpt export; needs --graph fused)",
        "none", ["int4", "int8"]);

    private readonly Option<string?> _cacheDir = CliOption.Text("--cache-dir", "DIR", "where the preset is exported",
        "onnxgpt-bench under the system temp folder");

    private static readonly int[] DefaultPromptLengths = [16, 512];

    private readonly Option<int[]?> _promptLengths = CliOption.IntList("--prompt-lengths", "L",
        "prompt lengths to decode after; a long prompt times fewer tokens where the context leaves less room (at least one)",
        string.Join(',', DefaultPromptLengths), min: 1);

    private readonly Option<int> _newTokens = CliOption.Int("--new-tokens", "N", "tokens timed per run with the KV cache (after 2 warm-up tokens)", 64, min: 1);

    private readonly Option<int> _recomputeTokens = CliOption.Int("--recompute-tokens", "N",
        "tokens timed per run without the cache, which recomputes everything; 0 skips those runs", 8, min: 0);

    private readonly SessionOptionGroup _session = new(defaultThreads: 2, threadsDefaultText: "2, for figures comparable across machines");

    private readonly Option<bool> _json = CliOption.Flag("--json", "one JSON object per run");

    private readonly Option<string?> _ortProfile = CliOption.Text("--ort-profile", "PREFIX",
        "run under ONNX Runtime's profiler (the runs with the KV cache, no throwaway run first), write its trace to " +
        "PREFIX_*.json and print the kernel time per operator for the prompts and for decoding after each prompt length",
        "no profile");

    public BenchCommand()
        : base("bench", "time to first token, prompt and decode speed with and without the KV cache, managed bytes per token; " +
            "'bench compare' puts engines side by side")
    {
        Options.Add(_model);
        Options.Add(_preset);
        Options.Add(_seed);
        Options.Add(_graph);
        Options.Add(_quantize);
        Options.Add(_cacheDir);
        Options.Add(_promptLengths);
        Options.Add(_newTokens);
        Options.Add(_recomputeTokens);
        _session.AddTo(this);
        Options.Add(_json);
        Options.Add(_ortProfile);
        Subcommands.Add(new BenchCompareCommand());
        Subcommands.Add(new BenchConstraintCommand());
        Subcommands.Add(new BenchDecodingCommand());
        Subcommands.Add(new BenchSpeculativeCommand());
        Subcommands.Add(new BenchContextCommand());
        Subcommands.Add(new BenchOrleansCommand());
        Subcommands.Add(new BenchCacheSimCommand());
        Validators.Add(r =>
        {
            if (r.Given(_model) && (r.Given(_preset) || r.Given(_cacheDir) || r.Given(_graph) || r.Given(_quantize)))
            {
                r.AddError("--model and --preset/--cache-dir/--graph/--quantize exclude each other.");
            }

            if (r.Given(_quantize) && r.ValueIfValid(_graph) != "fused")
            {
                r.AddError("--quantize needs --graph fused (MatMulNBits is an ONNX Runtime operator).");
            }
        });
    }

    protected override int Run(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        string? modelPath = parse.GetValue(_model);
        long seed = parse.GetValue(_seed);
        var graph = new GraphOptions
        {
            Flavor = parse.GetValue(_graph) == "fused" ? GraphFlavor.Fused : GraphFlavor.Portable,
            Quantization = parse.GetValue(_quantize) switch
            {
                "int4" => WeightQuantization.Int4,
                "int8" => WeightQuantization.Int8,
                _ => WeightQuantization.None,
            },
        };
        var lengths = parse.GetValue(_promptLengths) is { Length: > 0 } given ? given : DefaultPromptLengths;
        int newTokens = parse.GetValue(_newTokens), recomputeTokens = parse.GetValue(_recomputeTokens);
        bool json = parse.GetValue(_json);
        var cacheDir = parse.GetValue(_cacheDir);
        var preset = parse.GetValue(_preset);
        modelPath ??= EnsureExported(preset ?? "gpt2", (ulong)seed, graph, cacheDir, stderr);
        string? profile = parse.GetValue(_ortProfile);
        using var model = SessionOptionGroup.Load(modelPath, _session.Read(parse) with { ProfileOutputPrefix = profile }, stderr);
        int context = model.Config.ContextLength;
        int longest = lengths.Max() + WarmUp + 2;   // the prompt, the first token, the warm-up, one timed token
        if (longest > context)
        {
            throw new CliUsageException(
                $"--prompt-lengths: a prompt of {lengths.Max()} tokens needs {longest} (first token, {WarmUp} warm-up, one timed) but the model's context is {context}.");
        }

        if (!json)
        {
            stdout.WriteLine($"{model} ({model.Config.ParameterCount:N0} parameters); providers: {string.Join(", ", model.Providers)}");
            stdout.WriteLine($"{"prompt",7} {"kv cache",9} {"ttft ms",9} {"prompt tok/s",13} {"ms/token",9} {"tokens/s",9} {"timed",6} {"managed B/token",16}");
        }

        // A throwaway run first: the process's first tokens are slower (measured: up to 2-3x for GPT-2's first
        // decode steps) and would otherwise be charged to the first prompt length.
        // Profiled, the throwaway run stays below the shortest prompt length, so that its steps are told apart from
        // the measured ones by their context (see OrtProfile), and no recomputing runs blur the figures.
        int warmPrompt = Math.Max(1, Math.Min(8, context / 4)), warmTokens = Math.Min(16, context - warmPrompt - WarmUp - 1);
        if (profile is not null)
        {
            warmPrompt = Math.Max(1, Math.Min(4, lengths.Min() / 4));
            warmTokens = Math.Min(warmTokens, lengths.Min() - warmPrompt - WarmUp - 1);
        }

        Measure(model, warmPrompt, Math.Max(1, warmTokens), cache: true, seed);

        var runs = new List<Measurement>();
        foreach (bool cache in profile is null ? new[] { true, false } : [true])
        {
            foreach (int length in lengths)
            {
                int timed = Math.Min(cache ? newTokens : recomputeTokens, context - length - WarmUp - 1);
                if (timed <= 0 || (!cache && recomputeTokens == 0))
                {
                    continue;
                }

                var run = Measure(model, length, timed, cache, seed);
                runs.Add(run);
                if (json)
                {
                    stdout.WriteLine(new JsonObject
                    {
                        ["prompt_tokens"] = run.PromptLength,
                        ["kv_cache"] = run.Cache,
                        ["prefill_ms"] = Math.Round(run.PrefillMs, 3),
                        ["ttft_ms"] = Math.Round(run.FirstTokenMs, 3),
                        ["prompt_tokens_per_second"] = Math.Round(run.PromptLength * 1000 / run.PrefillMs, 3),
                        ["ms_per_token"] = Math.Round(run.MsPerToken, 3),
                        ["tokens_per_second"] = Math.Round(1000 / run.MsPerToken, 3),
                        ["managed_bytes_per_token"] = run.BytesPerToken,
                        ["tokens_timed"] = run.Tokens,
                    }.ToJsonString());
                }
                else
                {
                    stdout.WriteLine($"{run.PromptLength,7} {(run.Cache ? "on" : "off"),9} {run.FirstTokenMs,9:F1} {run.PromptLength * 1000 / run.PrefillMs,13:F1} " +
                        $"{run.MsPerToken,9:F2} {1000 / run.MsPerToken,9:F1} {run.Tokens,6} {run.BytesPerToken,16:F1}");
                }
            }
        }

        if (!json && lengths.Length > 1)
        {
            foreach (bool cache in new[] { true, false })
            {
                var mine = runs.Where(r => r.Cache == cache).OrderBy(r => r.PromptLength).ToList();
                if (mine.Count > 1)
                {
                    stdout.WriteLine(
                        $"kv cache {(cache ? "on" : "off")}: per-token time after {mine[^1].PromptLength} tokens is " +
                        $"{mine[^1].MsPerToken / mine[0].MsPerToken:F2}x that after {mine[0].PromptLength}");
                }
            }
        }

        if (profile is not null)
        {
            model.Dispose();   // the session writes its trace as it closes
            PrintProfile(profile, lengths, stdout);
        }

        return ExitCodes.Success;
    }

    /// <summary>The newest trace under <paramref name="prefix"/>, summed per operator for each kind of run.</summary>
    private static void PrintProfile(string prefix, int[] lengths, TextWriter stdout)
    {
        string folder = Path.GetDirectoryName(Path.GetFullPath(prefix))!;
        var file = new DirectoryInfo(folder).GetFiles(Path.GetFileName(prefix) + "_*.json").MaxBy(f => f.LastWriteTimeUtc)
            ?? throw new OnnxGptException($"--ort-profile: ONNX Runtime wrote no {prefix}_*.json; check that the folder exists and is writable.");
        stdout.WriteLine($"ONNX Runtime profile {file.FullName}: kernel time per operator, mean per run");
        stdout.Write(OrtProfile.Summarize(file.FullName, lengths));
    }

    /// <summary>Tokens generated after the first and before the timed ones.</summary>
    private const int WarmUp = 2;

    /// <param name="PrefillMs">The prompt's forward pass (and picking the first token).</param>
    /// <param name="FirstTokenMs">From appending the prompt to having the first token: tokenized ids in, first id out.</param>
    private sealed record Measurement(int PromptLength, bool Cache, double PrefillMs, double FirstTokenMs, double MsPerToken, double BytesPerToken, int Tokens);

    private static Measurement Measure(GptModel model, int promptLength, int tokens, bool cache, long seed)
    {
        var random = new Random((int)seed + promptLength);
        var prompt = new int[promptLength];
        for (int i = 0; i < prompt.Length; i++)
        {
            prompt[i] = random.Next(model.Config.VocabSize);
        }

        var options = new GenerationOptions { DoSample = false, MaxNewTokens = 1 + WarmUp + tokens };
        var settings = new GeneratorOptions { UseKvCache = cache, DecodeText = false, StopAtEndOfSequence = false };
        using var generator = model.CreateGenerator(options, settings);
        long appended = Stopwatch.GetTimestamp();
        generator.Append(prompt);
        var clock = Stopwatch.StartNew();
        generator.GenerateNextToken();               // the prompt's forward pass, then the first token
        double prefill = clock.Elapsed.TotalMilliseconds;
        double firstToken = Stopwatch.GetElapsedTime(appended).TotalMilliseconds;
        for (int i = 0; i < WarmUp; i++)
        {
            generator.GenerateNextToken();
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        clock.Restart();
        for (int i = 0; i < tokens; i++)
        {
            generator.GenerateNextToken();
        }

        double elapsed = clock.Elapsed.TotalMilliseconds;
        long bytes = GC.GetAllocatedBytesForCurrentThread() - before;
        return new Measurement(promptLength, cache, prefill, firstToken, elapsed / tokens, (double)bytes / tokens, tokens);
    }

    /// <summary>The preset with seeded weights, exported once into the cache folder and reused after.</summary>
    private static string EnsureExported(string preset, ulong seed, GraphOptions graph, string? cacheDir, TextWriter stderr)
    {
        var config = GptPresets.Get(preset);
        string variant = graph.Flavor == GraphFlavor.Portable ? "" : graph.Quantization == WeightQuantization.None ? "-fused"
            : $"-fused-{graph.Quantization.ToString().ToLowerInvariant()}";
        string folder = Path.Combine(cacheDir ?? Path.Combine(Path.GetTempPath(), "onnxgpt-bench"), $"{preset}-seed{seed}{variant}");
        string configFile = Path.Combine(folder, ModelFolder.ConfigFile);
        if (File.Exists(Path.Combine(folder, ModelFolder.ModelFile)) && File.Exists(configFile)
            && GptConfig.FromJson(File.ReadAllText(configFile), configFile) == config)
        {
            return folder;
        }

        stderr.WriteLine($"exporting {preset} with seeded weights (seed {seed}) to {folder} (once)");
        var weights = SeededInit.Create(config, seed);
        using var progress = new ExportProgress(stderr, $"export {preset}");
        GptExporter.Export(weights, folder, new ExportOptions
        {
            Force = true,
            Graph = graph,
            Tokenizer = config.VocabSize == 50257 ? TokenizerSpec.Gpt2 : null,
            Source = $"preset {preset}, GPT-2 initialisation with seed {seed}",
        }, progress);
        return folder;
    }
}

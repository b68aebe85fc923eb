using System.Diagnostics;
using System.Text.Json.Nodes;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Providers;

namespace OnnxGpt.Cli.Commands;

/// <summary>
/// <c>onnxgpt bench</c>: per prompt length, the time to first token, prompt processing speed, decoding speed after
/// the prompt, with and without the KV cache, and the managed bytes allocated per generated token. By default on
/// GPT-2 124M with seeded weights, exported once (portable or fused graph, float or quantized) to a cache folder.
/// </summary>
public sealed class BenchCommand : ICommand
{
    public string Name => "bench";

    public string Summary => "time to first token, prompt and decode speed with and without the KV cache, managed bytes per token";

    public string Usage => """
        usage: onnxgpt bench [--model DIR | --preset NAME [--seed N] [--graph portable|fused] [--quantize int4|int8]
                             [--cache-dir DIR]] [--prompt-lengths 16,512] [--new-tokens N] [--recompute-tokens N]
                             [--threads N] [--provider LIST] [--json]
          --model DIR          benchmark this model folder
          --preset NAME        a preset with seeded weights (default gpt2, seed 1), exported once into
                               --cache-dir (default: onnxgpt-bench under the system temp folder)
          --graph, --quantize  how the preset is exported (as onnxgpt export; default portable, float)
          --prompt-lengths L   prompt lengths to decode after (default 16,512); a long prompt times fewer tokens
                               where the context leaves less room (at least one)
          --new-tokens N       tokens timed per run with the KV cache (default 64, after 2 warm-up tokens)
          --recompute-tokens N tokens timed per run without the cache, which recomputes everything (default 8; 0 skips)
          --threads N          ONNX Runtime intra-op threads (default 2)
          --provider LIST      execution providers (default cpu)
          --json               one JSON object per run
        """;

    public IReadOnlyCollection<string> Flags => ["json", RuntimeArgs.FallbackFlag, RuntimeArgs.OrtWarningsFlag];

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        string? modelPath = args.Option("model"), preset = args.Option("preset"), cacheDir = args.Option("cache-dir");
        long seed = args.Long("seed") ?? 1;
        string? graphChoice = args.Choice("graph", "portable", "fused"), quantizeChoice = args.Choice("quantize", "int4", "int8");
        var graph = new GraphOptions
        {
            Flavor = graphChoice == "fused" ? GraphFlavor.Fused : GraphFlavor.Portable,
            Quantization = quantizeChoice switch
            {
                "int4" => WeightQuantization.Int4,
                "int8" => WeightQuantization.Int8,
                _ => WeightQuantization.None,
            },
        };
        var lengths = RuntimeArgs.ParseIds(args.Option("prompt-lengths") ?? "16,512", "prompt-lengths");
        int newTokens = args.Int("new-tokens") ?? 64, recomputeTokens = args.Int("recompute-tokens") ?? 8;
        bool json = args.Flag("json");
        int threads = args.Int("threads") ?? 2;
        var session = RuntimeArgs.ReadSession(args);
        args.EnsureAllRead();
        if (modelPath is not null && (preset is not null || cacheDir is not null || graphChoice is not null || quantizeChoice is not null))
        {
            throw new CliUsageException("--model and --preset/--cache-dir/--graph/--quantize exclude each other.");
        }

        if (graph.Quantization != WeightQuantization.None && graph.Flavor != GraphFlavor.Fused)
        {
            throw new CliUsageException("--quantize needs --graph fused (MatMulNBits is an ONNX Runtime operator).");
        }

        if (newTokens < 1 || recomputeTokens < 0 || seed < 0 || lengths.Any(l => l < 1))
        {
            throw new CliUsageException("--new-tokens and the prompt lengths must be at least 1; --recompute-tokens and --seed at least 0.");
        }

        // Threads default to 2 here (comparable figures), unless --threads said otherwise.
        session = session with
        {
            Providers = [.. session.Providers.Select(p => p is CpuProvider { IntraOpThreads: 0 } cpu ? cpu with { IntraOpThreads = threads } : p)],
        };

        modelPath ??= EnsureExported(preset ?? "gpt2", (ulong)seed, graph, cacheDir, stderr);
        using var model = RuntimeArgs.Load(modelPath, session, stderr);
        int context = model.Config.ContextLength;
        int longest = lengths.Max() + WarmUp + 2;   // the prompt, the first token, the warm-up, one timed token
        if (longest > context)
        {
            throw new CliUsageException(
                $"a prompt of {lengths.Max()} tokens needs {longest} (first token, {WarmUp} warm-up, one timed) but the model's context is {context}.");
        }

        if (!json)
        {
            stdout.WriteLine($"{model} ({model.Config.ParameterCount:N0} parameters); providers: {string.Join(", ", model.Providers)}");
            stdout.WriteLine($"{"prompt",7} {"kv cache",9} {"ttft ms",9} {"prompt tok/s",13} {"ms/token",9} {"tokens/s",9} {"timed",6} {"managed B/token",16}");
        }

        // A throwaway run first: the process's first tokens are slower (measured: up to 2-3x for GPT-2's first
        // decode steps) and would otherwise be charged to the first prompt length.
        int warmPrompt = Math.Max(1, Math.Min(8, context / 4));
        Measure(model, warmPrompt, Math.Max(1, Math.Min(16, context - warmPrompt - WarmUp - 1)), cache: true, seed);

        var runs = new List<Measurement>();
        foreach (bool cache in new[] { true, false })
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

        return 0;
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
        GptExporter.Export(weights, folder, new ExportOptions
        {
            Force = true,
            Graph = graph,
            Tokenizer = config.VocabSize == 50257 ? TokenizerSpec.Gpt2 : null,
            Source = $"preset {preset}, GPT-2 initialisation with seed {seed}",
        });
        return folder;
    }
}

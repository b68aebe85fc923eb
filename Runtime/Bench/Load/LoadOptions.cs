using System.Globalization;

namespace OnnxGpt.Bench.Load;

/// <summary>Command-line options of <c>onnxgpt-bench load</c>.</summary>
public sealed record LoadOptions
{
    public const string Usage = """
        usage: onnxgpt-bench load --work DIR [--preset gpt2] [--seed 1] [--variants fused,int4] [--clients 1,2,4,8,16]
                                  [--prompt-tokens 16] [--new-tokens 128] [--passes 2] [--threads 2]
                                  [--onnxgpt PATH/onnxgpt.dll] [--llamabench PATH/llamabench.dll] [--chart FILE.png]
                                  [--late-trials 20] [--late-only] [--replot load-results.json]
          Starts `onnxgpt serve` on loopback for each variant and drives it with N concurrent streaming clients
          (/v1/completions, greedy); checks every client's text against its prompt's solo text; measures a request
          that arrives while 7 others decode (--late-trials trials, arrivals spread over the step, its time to first token
          split into parts by the server's timings; --late-only measures only that, in every pass); with --llamabench, llama.cpp's batched decoding (--parallel) runs
          between the passes, so both see the same machine. --replot draws the chart again from a run's results.
        """;

    public string Work { get; init; } = "";

    public string Preset { get; init; } = "gpt2";

    public ulong Seed { get; init; } = 1;

    public string[] Variants { get; init; } = ["fused", "int4"];

    public int[] Clients { get; init; } = [1, 2, 4, 8, 16];

    public int PromptTokens { get; init; } = 16;

    public int NewTokens { get; init; } = 128;

    /// <summary>Sweeps over every client count per variant; llama.cpp runs between the first two.</summary>
    public int Passes { get; init; } = 2;

    public int Threads { get; init; } = 2;

    /// <summary>Trials of the late-arrival measurement (per pass with <see cref="LateOnly"/>, else in the first pass).</summary>
    public int LateTrials { get; init; } = 20;

    /// <summary>Measure only the late arrival (no client sweep, no llama.cpp), in every pass.</summary>
    public bool LateOnly { get; init; }

    /// <summary>The built onnxgpt.dll; by default the Release build beside this benchmark's.</summary>
    public string Onnxgpt { get; init; } = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "Cli", "bin", "Release", "net10.0", "onnxgpt.dll"));

    public string? LlamaBench { get; init; }

    /// <summary>Where the throughput chart goes; by default throughput.png in the work folder.</summary>
    public string? Chart { get; init; }

    /// <summary>A load-results.json to draw the chart from again, instead of running anything.</summary>
    public string? Replot { get; init; }

    public static LoadOptions Parse(string[] args)
    {
        var o = new LoadOptions();
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i];
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{name} needs a value.");
            int Int() => int.TryParse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v > 0
                ? v : throw new ArgumentException($"{name} needs a positive integer.");
            o = name switch
            {
                "--work" => o with { Work = Value() },
                "--preset" => o with { Preset = Value() },
                "--seed" => o with { Seed = ulong.Parse(Value(), CultureInfo.InvariantCulture) },
                "--variants" => o with { Variants = Value().Split(',') },
                "--clients" => o with { Clients = [.. Value().Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).Order()] },
                "--prompt-tokens" => o with { PromptTokens = Int() },
                "--new-tokens" => o with { NewTokens = Int() },
                "--passes" => o with { Passes = Int() },
                "--threads" => o with { Threads = Int() },
                "--late-trials" => o with { LateTrials = Int() },
                "--late-only" => o with { LateOnly = true },
                "--onnxgpt" => o with { Onnxgpt = Value() },
                "--llamabench" => o with { LlamaBench = Value() },
                "--chart" => o with { Chart = Value() },
                "--replot" => o with { Replot = Value() },
                _ => throw new ArgumentException($"unknown option '{name}'."),
            };
        }

        if (o.Work.Length == 0)
        {
            throw new ArgumentException("--work DIR is required (model folders and results go there).");
        }

        foreach (var (path, what) in new[] { (o.Onnxgpt, "--onnxgpt"), (o.LlamaBench, "--llamabench") })
        {
            if (path is not null && !File.Exists(path))
            {
                throw new ArgumentException($"{what}: '{path}' does not exist; build it first (build.ps1 build, or the tool's own project).");
            }
        }

        return o;
    }
}

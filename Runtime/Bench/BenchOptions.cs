using System.Globalization;

namespace OnnxGpt.Bench;

/// <summary>Command-line options of onnxgpt-bench.</summary>
public sealed record BenchOptions
{
    public const string Usage = """
        usage: onnxgpt-bench --work DIR [--preset gpt2] [--seed 1] [--variants fused,int4] [--engines onnxgpt,genai]
                             [--prompt 512] [--contexts 16,256,512,1000] [--new-tokens 128] [--reps 3] [--threads 2]
                             [--llamabench PATH/llamabench.dll]
          variants: portable, fused, int8, int4 (exported once into DIR and reused)
          --llamabench  also runs llama.cpp (the llamabench tool, built from its own folder) once per repetition,
                        alternating with the other engines: f32 beside fused, q8_0 beside int8, q4_0 beside int4
        """;

    public string Work { get; init; } = "";

    public string Preset { get; init; } = "gpt2";

    public ulong Seed { get; init; } = 1;

    public string[] Variants { get; init; } = ["fused", "int4"];

    public string[] Engines { get; init; } = ["onnxgpt", "genai"];

    public int Prompt { get; init; } = 512;

    public int[] Contexts { get; init; } = [16, 256, 512, 1000];

    /// <summary>Tokens timed per context (fewer where the context leaves less room); llamabench times 128.</summary>
    public int NewTokens { get; init; } = 128;

    /// <summary>The built llamabench.dll, run once per repetition beside the other engines; null leaves llama.cpp out.</summary>
    public string? LlamaBench { get; init; }

    public int Reps { get; init; } = 3;

    public int Threads { get; init; } = 2;

    /// <summary>Set in a child process: the engine to measure.</summary>
    public string? Child { get; init; }

    public string? Model { get; init; }

    public string? VariantName { get; init; }

    public IEnumerable<string> ChildArguments(string engine, string variant, string folder) =>
    [
        "--child", engine, "--model", folder, "--variant-name", variant, "--work", Work, "--seed", Seed.ToString(CultureInfo.InvariantCulture),
        "--prompt", Prompt.ToString(CultureInfo.InvariantCulture), "--contexts", string.Join(',', Contexts),
        "--new-tokens", NewTokens.ToString(CultureInfo.InvariantCulture), "--threads", Threads.ToString(CultureInfo.InvariantCulture),
    ];

    public static BenchOptions Parse(string[] args)
    {
        var o = new BenchOptions();
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
                "--engines" => o with { Engines = Value().Split(',') },
                "--prompt" => o with { Prompt = Int() },
                "--contexts" => o with { Contexts = Value().Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray() },
                "--new-tokens" => o with { NewTokens = Int() },
                "--reps" => o with { Reps = Int() },
                "--threads" => o with { Threads = Int() },
                "--child" => o with { Child = Value() },
                "--llamabench" => o with { LlamaBench = Value() },
                "--model" => o with { Model = Value() },
                "--variant-name" => o with { VariantName = Value() },
                _ => throw new ArgumentException($"unknown option '{name}'."),
            };
        }

        if (o.Work.Length == 0)
        {
            throw new ArgumentException("--work DIR is required (model folders and results go there).");
        }

        if (o.LlamaBench is { } llama && !File.Exists(llama))
        {
            throw new ArgumentException($"--llamabench: '{llama}' does not exist; expected the llamabench.dll built from its project.");
        }

        return o;
    }
}

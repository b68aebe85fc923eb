using System.Globalization;

namespace OnnxGpt.Cli.Benchmarking;

/// <summary>What <c>onnxgpt bench compare</c> measures: engines, model variants, prompt, contexts, repetitions.</summary>
internal sealed record ComparisonSettings
{
    /// <summary>Where model folders are exported once and results.json goes.</summary>
    public required string Work { get; init; }

    public string Preset { get; init; } = "gpt2";

    /// <summary>A config.json (GPT-2 or Llama fields) whose seeded weights are measured instead of a preset's.</summary>
    public string? ConfigFile { get; init; }

    /// <summary>A checkpoint (llama2.c .bin, Hugging Face folder) whose weights are measured instead of seeded ones.</summary>
    public string? Checkpoint { get; init; }

    /// <summary>What the model is called in folder names and the report.</summary>
    public string ModelName => Checkpoint is { } c ? Path.GetFileNameWithoutExtension(c.TrimEnd('/', '\\'))
        : ConfigFile is { } f ? Path.GetFileNameWithoutExtension(f) : Preset;

    public ulong Seed { get; init; } = 1;

    public IReadOnlyList<string> Variants { get; init; } = ["fused", "int4"];

    public IReadOnlyList<string> Engines { get; init; } = [BenchEngines.OnnxGpt];

    public int Prompt { get; init; } = 512;

    public IReadOnlyList<int> Contexts { get; init; } = [16, 256, 512, 1000];

    /// <summary>Tokens timed per context (fewer where the context leaves less room); llamabench times 128.</summary>
    public int NewTokens { get; init; } = 128;

    /// <summary>The built llamabench.dll, run once per repetition beside the other engines; null leaves llama.cpp out.</summary>
    public string? LlamaBench { get; init; }

    public int Reps { get; init; } = 3;

    public int Threads { get; init; } = 2;

    /// <summary>The arguments a child process gets to measure one engine on one folder.</summary>
    public IEnumerable<string> ChildArguments(string engine, string variant, string folder) =>
    [
        "bench", "compare", "--child", engine, "--model", folder, "--variant-name", variant, "--work", Work,
        "--seed", Seed.ToString(CultureInfo.InvariantCulture), "--prompt", Prompt.ToString(CultureInfo.InvariantCulture),
        "--contexts", string.Join(',', Contexts), "--new-tokens", NewTokens.ToString(CultureInfo.InvariantCulture),
        "--threads", Threads.ToString(CultureInfo.InvariantCulture),
    ];
}

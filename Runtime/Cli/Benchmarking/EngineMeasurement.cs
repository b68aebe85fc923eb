namespace OnnxGpt.Cli.Benchmarking;

/// <summary>What one engine measured on one model folder in one child process.</summary>
internal sealed record EngineMeasurement
{
    public required string Engine { get; init; }

    public required string Variant { get; init; }

    /// <summary>The repetition it belongs to (0-based): engines in one repetition ran back to back.</summary>
    public int Repetition { get; init; }

    public double LoadSeconds { get; init; }

    /// <summary>Time to first token after a prompt of <see cref="PromptTokens"/> tokens (prefill plus one token).</summary>
    public double TimeToFirstTokenMs { get; init; }

    public int PromptTokens { get; init; }

    /// <summary>Decode tokens per second by context length (tokens already in the sequence when timing starts).</summary>
    public Dictionary<int, double> DecodeTokensPerSecond { get; init; } = [];

    /// <summary>Managed bytes allocated per decoded token, by context length.</summary>
    public Dictionary<int, double> ManagedBytesPerToken { get; init; } = [];

    public double PeakWorkingSetMiB { get; init; }

    /// <summary>Tokens decoded (and seconds taken) to warm up before any timing: until the JIT went quiet.</summary>
    public int WarmUpTokens { get; init; }

    public double WarmUpSeconds { get; init; }

    /// <summary>Milliseconds the .NET JIT compiled while each context was timed (near 0 once warmed up).</summary>
    public Dictionary<int, double> JitMsWhileTiming { get; init; } = [];

    /// <summary>Prompt tokens per second where the engine reports it directly rather than through a time to first token.</summary>
    public double? PromptRate { get; init; }

    public double PromptTokensPerSecond => PromptRate ?? PromptTokens / (TimeToFirstTokenMs / 1000);
}

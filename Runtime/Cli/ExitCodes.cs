namespace OnnxGpt.Cli;

/// <summary>The exit codes of <c>onnxgpt</c>, as the README documents them.</summary>
internal static class ExitCodes
{
    /// <summary>The command did what it was asked.</summary>
    public const int Success = 0;

    /// <summary>A runtime or model error: a file that is missing or not a model, a provider that cannot start, ...</summary>
    public const int Failure = 1;

    /// <summary>A usage error: an unknown option, a value out of range, options that exclude each other.</summary>
    public const int Usage = 2;

    /// <summary>Stopped by Ctrl+C (128 + SIGINT, as shells report it).</summary>
    public const int Cancelled = 130;
}

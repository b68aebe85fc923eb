namespace OnnxGpt.Cli.Benchmarking;

/// <summary>A host that runs a model folder: load, feed a prompt, decode greedily, one token per call.</summary>
internal interface IBenchEngine : IDisposable
{
    /// <summary>The engine's name in tables and in <c>--engines</c>.</summary>
    string Name { get; }

    /// <summary>Starts a new sequence with <paramref name="prompt"/> room for <paramref name="maxLength"/> tokens; runs the prompt.</summary>
    void Start(int[] prompt, int maxLength);

    /// <summary>Picks the next token and runs the model on it.</summary>
    void Next();

    /// <summary>The tokens of the current sequence (prompt and generated).</summary>
    int[] Sequence();
}

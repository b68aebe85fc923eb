using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Tests.Support;

/// <summary>karpathy's tinyllamas stories260K from Tests/Data (see its README): checkpoint and tokenizer files.</summary>
internal static class Stories260K
{
    /// <summary>What greedy decoding from BOS begins with.</summary>
    public const string GreedyStart = "Once upon a time, there was a little girl named Lily.";

    public static string Checkpoint => TestPaths.DataFile("stories260K", "stories260K.bin");

    public static string SentencePieceModel => TestPaths.DataFile("stories260K", "tok512.model");

    public static string Llama2cTokenizer => TestPaths.DataFile("stories260K", "tok512.bin");

    private static readonly Lazy<GptWeights> Shared = new(() => Llama2cCheckpoint.Load(Checkpoint));

    /// <summary>The weights, loaded once per test run (they are immutable).</summary>
    public static GptWeights Weights => Shared.Value;
}

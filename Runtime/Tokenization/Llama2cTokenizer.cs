using System.Buffers.Binary;
using System.Text;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Tokenization;

/// <summary>
/// llama2.c's tokenizer file (<c>tok512.bin</c>, <c>tokenizer.bin</c>): an int32 maximum token length, then for each
/// token a float32 score, an int32 byte length and the bytes; the token count is what the file holds. llama2.c's
/// export writes each SentencePiece piece with <c>▁</c> already turned into a space, byte-fallback pieces as the text
/// <c>&lt;0x0A&gt;</c>, and the begin/end pieces as <c>"\n&lt;s&gt;\n"</c> / <c>"\n&lt;/s&gt;\n"</c>, by which they
/// are found. Encoding is SentencePiece's BPE as <c>run.c</c> does it: a space before the text, one piece per
/// character (its UTF-8 bytes through the byte pieces when it has none), then repeatedly the adjacent pair whose
/// merge is a piece with the highest score.
/// </summary>
internal sealed class Llama2cTokenizer : PieceTokenizer
{
    /// <summary>Ids of the 256 byte pieces in llama2.c's vocabularies start after &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt;.</summary>
    private readonly int[] _byteIds;
    private readonly Dictionary<string, int> _pieces;
    private readonly float[] _scores;

    private Llama2cTokenizer(string source, byte[][] bytes, bool[] special, int? bos, int? eos, float[] scores, Dictionary<string, int> pieces, int[] byteIds)
        : base(Contracts.TokenizerSpec.Llama2cKind, source, bytes, special, bos, eos)
    {
        _scores = scores;
        _pieces = pieces;
        _byteIds = byteIds;
    }

    /// <summary>The largest tokenizer file read (Llama's 32000-token one is about 430 KiB).</summary>
    public const long MaxFileBytes = 64L << 20;

    /// <summary>Most tokens a file may declare (a guard against reading garbage as a vocabulary).</summary>
    public const int MaxTokens = 1 << 21;

    /// <summary>Reads a llama2.c tokenizer file, checking each length against what is left of the file.</summary>
    public static Llama2cTokenizer Load(string path)
    {
        byte[] file = InputFile.ReadAllBytes(path, "llama2.c tokenizer", MaxFileBytes);   // a regular file of bounded size

        if (file.Length < 4)
        {
            throw Bad(path, $"{file.Length} bytes is too short for llama2.c's tokenizer header (an int32 maximum token length).");
        }

        int maxLength = BinaryPrimitives.ReadInt32LittleEndian(file);
        if (maxLength <= 0 || maxLength > 1 << 16)
        {
            throw Bad(path, $"the maximum token length is {maxLength}; expected a positive number of bytes (at most 65536). Is this a llama2.c tokenizer file?");
        }

        var bytes = new List<byte[]>();
        var scores = new List<float>();
        int at = 4;
        while (at < file.Length)
        {
            if (file.Length - at < 8)
            {
                throw Bad(path, $"token {bytes.Count} at byte {at}: the file ends inside its score and length (8 bytes needed, {file.Length - at} left).");
            }

            float score = BinaryPrimitives.ReadSingleLittleEndian(file.AsSpan(at));
            int length = BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(at + 4));
            at += 8;
            if (length < 0 || length > maxLength || length > file.Length - at)
            {
                throw Bad(path, $"token {bytes.Count} at byte {at - 4}: length {length}; expected 0 to {Math.Min(maxLength, file.Length - at)} " +
                    $"(the header's maximum {maxLength}, and what is left of the file).");
            }

            if (bytes.Count == MaxTokens)
            {
                throw Bad(path, $"more than {MaxTokens} tokens; this is not a llama2.c tokenizer file.");
            }

            bytes.Add(file.AsSpan(at, length).ToArray());
            scores.Add(score);
            at += length;
        }

        var pieces = new byte[bytes.Count][];
        var special = new bool[bytes.Count];
        var lookup = new Dictionary<string, int>(StringComparer.Ordinal);
        var byteIds = new int[256];
        Array.Fill(byteIds, -1);
        int? bos = null, eos = null;
        for (int id = 0; id < bytes.Count; id++)
        {
            string text = Encoding.UTF8.GetString(bytes[id]);
            if (text == "\n<s>\n" || text == "\n</s>\n")
            {
                pieces[id] = [];
                special[id] = true;
                if (text == "\n<s>\n")
                {
                    bos ??= id;
                }
                else
                {
                    eos ??= id;
                }
            }
            else if (TryParseBytePiece(text, out var b))
            {
                pieces[id] = [b];
                if (byteIds[b] < 0)
                {
                    byteIds[b] = id;
                }
            }
            else
            {
                pieces[id] = bytes[id];
                lookup.TryAdd(Key(bytes[id]), id);                               // the first id of a piece wins
            }
        }

        return new Llama2cTokenizer(path, pieces, special, bos, eos, [.. scores], lookup, byteIds);
    }

    /// <inheritdoc />
    public override int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0)
        {
            return [];
        }

        var tokens = new List<int>();
        var utf8 = Encoding.UTF8.GetBytes(" " + text);                         // SentencePiece's dummy prefix
        for (int i = 0; i < utf8.Length;)
        {
            int length = Utf8Length(utf8[i]);
            length = Math.Min(length, utf8.Length - i);
            if (_pieces.TryGetValue(Key(utf8.AsSpan(i, length)), out int id))
            {
                tokens.Add(id);
            }
            else
            {
                for (int k = 0; k < length; k++)
                {
                    int byteId = _byteIds[utf8[i + k]];
                    tokens.Add(byteId >= 0 ? byteId
                        : throw Bad(Source, $"the text has the byte 0x{utf8[i + k]:X2} (in '{text}'), which neither a piece nor a byte-fallback piece covers."));
                }
            }

            i += length;
        }

        while (true)
        {
            float best = float.NegativeInfinity;
            int bestAt = -1, bestId = -1;
            for (int i = 0; i + 1 < tokens.Count; i++)
            {
                if (_pieces.TryGetValue(Key([.. GetTokenBytes(tokens[i]), .. GetTokenBytes(tokens[i + 1])]), out int merged) && _scores[merged] > best)
                {
                    (best, bestAt, bestId) = (_scores[merged], i, merged);
                }
            }

            if (bestAt < 0)
            {
                return [.. tokens];
            }

            tokens[bestAt] = bestId;
            tokens.RemoveAt(bestAt + 1);
        }
    }

    private static int Utf8Length(byte lead) => lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;

    private static string Key(ReadOnlySpan<byte> bytes) => Encoding.Latin1.GetString(bytes);
}

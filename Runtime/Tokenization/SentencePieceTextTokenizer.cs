using System.Text;
using Microsoft.ML.Tokenizers;
using OnnxGpt;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Tokenization;

/// <summary>
/// A SentencePiece BPE model (<c>tokenizer.model</c>, <c>tok512.model</c>) through Microsoft.ML.Tokenizers'
/// <see cref="LlamaTokenizer"/>: it encodes (adding SentencePiece's dummy prefix, falling back to bytes for
/// characters outside the vocabulary); the bytes of each id and the begin/end ids come from the same model.
/// </summary>
internal sealed class SentencePieceTextTokenizer : PieceTokenizer
{
    private readonly SentencePieceTokenizer _inner;

    private SentencePieceTextTokenizer(string source, SentencePieceTokenizer inner, byte[][] bytes, bool[] special)
        : base(Contracts.TokenizerSpec.SentencePieceKind, source, bytes, special, inner.BeginningOfSentenceId, inner.EndOfSentenceId)
    {
        _inner = inner;
    }

    /// <summary>The largest SentencePiece model read (Llama's is about 500 KiB, larger vocabularies a few MiB).</summary>
    public const long MaxFileBytes = 64L << 20;

    /// <summary>Reads a SentencePiece model file; a file that is not one is an <see cref="OnnxGptException"/> naming it.</summary>
    public static SentencePieceTextTokenizer Load(string path)
    {
        SentencePieceTokenizer inner;
        try
        {
            using var stream = new MemoryStream(InputFile.ReadAllBytes(path, "SentencePiece model", MaxFileBytes));   // a regular file of bounded size
            inner = LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not (OutOfMemoryException or OnnxGptException))
        {
            throw Bad(path, $"not a SentencePiece BPE model that Microsoft.ML.Tokenizers reads ({e.GetType().Name}: {e.Message}).");
        }

        int size = inner.Vocabulary.Count == 0 ? 0 : inner.Vocabulary.Values.Max() + 1;
        var bytes = new byte[size][];
        var special = new bool[size];
        foreach (var (piece, id) in inner.Vocabulary)
        {
            if (id == inner.BeginningOfSentenceId || id == inner.EndOfSentenceId)
            {
                bytes[id] = [];                                                     // control pieces have no text
                special[id] = true;
            }
            else if (id == inner.UnknownId)
            {
                bytes[id] = Encoding.UTF8.GetBytes(" \u2047 ");                     // SentencePiece's surface for <unk>
            }
            else if (inner.ByteFallback && TryParseBytePiece(piece, out var b))
            {
                bytes[id] = [b];
            }
            else
            {
                bytes[id] = Encoding.UTF8.GetBytes(piece.Replace('\u2581', ' '));
            }
        }

        int missing = Array.IndexOf(bytes, null);
        if (missing >= 0)
        {
            throw Bad(path, $"the vocabulary has no piece for id {missing}; expected ids 0 to {size - 1} without gaps.");
        }

        return new SentencePieceTextTokenizer(path, inner, bytes, special);
    }

    /// <inheritdoc />
    public override int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0)
        {
            return [];
        }

        var ids = _inner.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false);
        if (ids.Count == 0 && !string.IsNullOrWhiteSpace(text))
        {
            // Microsoft.ML.Tokenizers 2.0.1's normalizer drops a one-character text ("a" normalizes to ""): normalize it
            // here as SentencePiece would (trimmed, ▁ for spaces, the dummy prefix) and encode that as it is.
            string normalized = (_inner.AddDummyPrefix ? "\u2581" : "") + text.Trim().Replace(' ', '\u2581');
            ids = _inner.EncodeToIds(normalized, addBeginningOfSentence: false, addEndOfSentence: false, considerPreTokenization: true, considerNormalization: false);
        }

        return [.. ids];
    }
}

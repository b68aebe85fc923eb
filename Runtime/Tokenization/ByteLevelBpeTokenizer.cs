using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace OnnxGpt.Runtime.Tokenization;

/// <summary>
/// GPT-2-style byte-level BPE: Microsoft.ML.Tokenizers does the encoding; this class keeps each token's bytes so
/// that decoding (whole or streamed) works on bytes and never depends on how the library renders partial UTF-8.
/// </summary>
internal sealed partial class ByteLevelBpeTokenizer : ITextTokenizer
{
    private readonly Tokenizer _inner;
    private readonly byte[]?[] _tokenBytes;
    private readonly bool[] _special;

    // Bytes no base token covers (a trimmed vocabulary); encoding text with them is an error, not a silent drop.
    private readonly bool[] _uncoveredBytes;
    private readonly bool _anyUncovered;
    private readonly string _source;

    public ByteLevelBpeTokenizer(string kind, string source, Tokenizer inner, byte[]?[] tokenBytes, bool[] special)
    {
        Kind = kind;
        _source = source;
        _inner = inner;
        _tokenBytes = tokenBytes;
        _special = special;
        _uncoveredBytes = new bool[256];
        Array.Fill(_uncoveredBytes, true);
        for (var id = 0; id < tokenBytes.Length; id++)
        {
            if (tokenBytes[id] is [var b] && !special[id])
            {
                _uncoveredBytes[b] = false;
            }
        }

        _anyUncovered = Array.IndexOf(_uncoveredBytes, true) >= 0;
    }

    public string Kind { get; }

    public int VocabularySize => _tokenBytes.Length;

    /// <summary>
    /// GPT-2's pre-tokenizer pattern (from its <c>encoder.py</c>): contractions, letters, digits and other
    /// symbols each with one optional leading space, then runs of whitespace.
    /// </summary>
    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")]
    internal static partial Regex Gpt2PreTokenizerPattern();

    /// <summary>
    /// Builds the tokenizer from a Hugging Face byte-level vocabulary (token strings in GPT-2's byte alphabet),
    /// its merges (<c>"left right"</c>, highest priority first) and the added tokens that are split out of the
    /// text before BPE.
    /// </summary>
    public static ByteLevelBpeTokenizer FromVocabulary(
        string kind,
        string source,
        IReadOnlyDictionary<string, int> vocabulary,
        IReadOnlyList<string> merges,
        IReadOnlyDictionary<string, int> addedTokens)
    {
        // Arrays below are sized by the largest id, so the ids are checked first against what backs them: a
        // vocabulary may leave gaps, but its ids stay below twice its token count (plus 256).
        var limit = (int)Math.Min(int.MaxValue, 2L * (vocabulary.Count + addedTokens.Count) + 256);
        var size = 0;
        foreach (var (token, id) in vocabulary.Concat(addedTokens))
        {
            if (id < 0 || id >= limit)
            {
                throw new OnnxGptException(
                    $"{source}: token '{token}' has id {id}; expected an id in [0, {limit}) for a vocabulary of " +
                    $"{vocabulary.Count + addedTokens.Count} tokens (ids may leave gaps, but not that many).");
            }

            size = Math.Max(size, id + 1);
        }

        if (size == 0)
        {
            throw new OnnxGptException($"{source}: the vocabulary is empty; expected at least one token.");
        }

        var bytes = new byte[]?[size];
        var owner = new string?[size];
        var special = new bool[size];
        foreach (var (token, id) in vocabulary)
        {
            if (owner[id] is { } other)
            {
                throw new OnnxGptException($"{source}: tokens '{other}' and '{token}' both have id {id}; expected unique ids.");
            }

            owner[id] = token;
            bytes[id] = ByteLevelAlphabet.TryToBytes(token) ?? Encoding.UTF8.GetBytes(token);
        }

        foreach (var (token, id) in addedTokens)
        {
            if (owner[id] is { } other && other != token)
            {
                throw new OnnxGptException($"{source}: added token '{token}' has id {id}, which the vocabulary gives to '{other}'.");
            }

            owner[id] = token;
            special[id] = true;
            bytes[id] = Encoding.UTF8.GetBytes(token);
        }

        var specialTokens = addedTokens.Count == 0 ? null : new Dictionary<string, int>(addedTokens);
        Tokenizer inner;
        try
        {
            inner = BpeTokenizer.Create(new BpeOptions(vocabulary)
            {
                Merges = merges,
                ByteLevel = true,
                SpecialTokens = specialTokens,
                PreTokenizer = new RegexPreTokenizer(Gpt2PreTokenizerPattern(), specialTokens),
            });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or KeyNotFoundException)
        {
            throw new OnnxGptException($"{source}: Microsoft.ML.Tokenizers rejected the BPE vocabulary or merges ({e.Message}).", e);
        }

        return new ByteLevelBpeTokenizer(kind, source, inner, bytes, special);
    }

    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (_anyUncovered)
        {
            CheckCoverage(text);
        }

        var ids = _inner.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true);
        var result = new int[ids.Count];
        for (var i = 0; i < result.Length; i++)
        {
            result[i] = ids[i];
        }

        return result;
    }

    public string Decode(ReadOnlySpan<int> ids)
    {
        var length = 0;
        foreach (var id in ids)
        {
            length += GetTokenBytes(id).Length;
        }

        var buffer = new byte[length];
        var offset = 0;
        foreach (var id in ids)
        {
            var piece = GetTokenBytes(id);
            piece.CopyTo(buffer.AsSpan(offset));
            offset += piece.Length;
        }

        return Encoding.UTF8.GetString(buffer);
    }

    public ReadOnlySpan<byte> GetTokenBytes(int id)
    {
        if ((uint)id >= (uint)_tokenBytes.Length || _tokenBytes[id] is not { } bytes)
        {
            throw new ArgumentOutOfRangeException(
                nameof(id), id, $"Token id {id} is not in the {Kind} vocabulary of {_tokenBytes.Length} ids ({_source}).");
        }

        return bytes;
    }

    public bool IsSpecialToken(int id) => (uint)id < (uint)_special.Length && _special[id];

    private void CheckCoverage(string text)
    {
        Span<byte> utf8 = stackalloc byte[4];
        for (var i = 0; i < text.Length;)
        {
            if (Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out var used) != System.Buffers.OperationStatus.Done)
            {
                throw new OnnxGptException($"Text to encode has an unpaired surrogate U+{(int)text[i]:X4} at position {i}; expected valid UTF-16 text.");
            }

            var n = rune.EncodeToUtf8(utf8);
            foreach (var b in utf8[..n])
            {
                if (_uncoveredBytes[b])
                {
                    throw new OnnxGptException(
                        $"Text to encode has character '{rune}' (U+{rune.Value:X4}) at position {i}, whose UTF-8 byte 0x{b:X2} " +
                        $"has no token in the {Kind} vocabulary ({_source}); this vocabulary does not cover every byte.");
                }
            }

            i += used;
        }
    }
}

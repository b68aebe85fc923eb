using System.Text;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Tokenization;

/// <summary>
/// Turns generated token ids into text as they arrive. Works on each token's bytes: a UTF-8 character split
/// across byte-level BPE tokens (an emoji, a CJK character) is held back until its last byte arrives, so no piece
/// ever holds a broken character or a lone surrogate. The concatenated pieces plus <see cref="Flush"/> equal
/// <see cref="ITextTokenizer.Decode"/> of all the ids. Each call costs time in proportion to the token's bytes,
/// never to the text so far. Not thread-safe: one per generated sequence.
/// </summary>
public sealed class StreamingDecoder
{
    private readonly ITextTokenizer _tokenizer;
    private readonly bool _skipSpecialTokens;

    // The UTF-8 decoder keeps the bytes of an unfinished character between calls; invalid bytes become U+FFFD.
    private readonly Decoder _utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false).GetDecoder();
    private char[] _chars = new char[64];
    private int _previous = -1;

    /// <param name="tokenizer">Gives each token's bytes.</param>
    /// <param name="skipSpecialTokens">Leave special tokens (<c>&lt;|endoftext|&gt;</c>) out of the text.</param>
    public StreamingDecoder(ITextTokenizer tokenizer, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>Whether bytes of an unfinished character are held back.</summary>
    public bool HasPendingBytes { get; private set; }

    /// <summary>Feeds one token; returns the text completed by it (empty while a character is still incomplete).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is not in the tokenizer's vocabulary.</exception>
    public string Append(int tokenId)
    {
        var bytes = _tokenizer.GetTokenBytes(tokenId);
        bool dropSpace = bytes.Length > 0 && bytes[0] == (byte)' ' && _tokenizer.DropsLeadingSpaceAfter(_previous);
        _previous = tokenId;
        if (_skipSpecialTokens && _tokenizer.IsSpecialToken(tokenId))
        {
            return string.Empty;
        }

        return Decode(dropSpace ? bytes[1..] : bytes, flush: false);
    }

    /// <summary>Ends the stream: returns what is held back, with an incomplete trailing character as U+FFFD; then starts afresh.</summary>
    public string Flush() => Decode([], flush: true);

    /// <summary>Drops anything held back and starts afresh, as at the start of a text.</summary>
    public void Reset() => Reset(-1);

    /// <summary>
    /// Drops anything held back and starts afresh after <paramref name="previousToken"/> (the last token before the
    /// ones to come, −1 for none), which decides whether a SentencePiece token's leading space is kept.
    /// </summary>
    public void Reset(int previousToken)
    {
        _utf8.Reset();
        HasPendingBytes = false;
        _previous = previousToken;
    }

    private string Decode(ReadOnlySpan<byte> bytes, bool flush)
    {
        // Each byte yields at most one UTF-16 unit; held-back bytes (at most 3) add at most 3 more (as U+FFFD).
        var most = bytes.Length + 4;
        if (_chars.Length < most)
        {
            _chars = new char[Math.Max(most, _chars.Length * 2)];
        }

        _utf8.Convert(bytes, _chars, flush, out _, out var written, out _);
        HasPendingBytes = !flush && _utf8.GetCharCount([], flush: true) > 0;
        return written == 0 ? string.Empty : new string(_chars, 0, written);
    }
}

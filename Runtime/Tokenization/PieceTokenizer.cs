using System.Text;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Tokenization;

/// <summary>
/// What SentencePiece-style vocabularies share (Llama's <c>tokenizer.model</c> and llama2.c's <c>tok*.bin</c> alike):
/// each id's bytes (a piece's text with <c>▁</c> as a space, a byte-fallback piece <c>&lt;0x0A&gt;</c> as its one
/// byte, the control pieces <c>&lt;s&gt;</c> / <c>&lt;/s&gt;</c> as nothing), the begin/end ids, and decoding with
/// SentencePiece's rule that the space before the first word of a sequence is not part of the text.
/// </summary>
internal abstract class PieceTokenizer : ITextTokenizer
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);
    private readonly byte[][] _bytes;
    private readonly bool[] _special;

    protected PieceTokenizer(string kind, string source, byte[][] bytes, bool[] special, int? bos, int? eos)
    {
        Kind = kind;
        Source = source;
        _bytes = bytes;
        _special = special;
        BosTokenId = bos;
        EosTokenId = eos;
    }

    /// <inheritdoc />
    public string Kind { get; }

    /// <summary>The file the vocabulary came from, for messages.</summary>
    public string Source { get; }

    /// <inheritdoc />
    public int VocabularySize => _bytes.Length;

    /// <inheritdoc />
    public int? BosTokenId { get; }

    /// <inheritdoc />
    public int? EosTokenId { get; }

    /// <inheritdoc />
    public bool AddsBosToken => BosTokenId is not null;

    /// <inheritdoc />
    public abstract int[] Encode(string text);

    /// <inheritdoc />
    public bool DropsLeadingSpaceAfter(int previousToken) => previousToken < 0 || previousToken == BosTokenId;

    /// <inheritdoc />
    public ReadOnlySpan<byte> GetTokenBytes(int id) => _bytes[Check(id)];

    /// <inheritdoc />
    public bool IsSpecialToken(int id) => _special[Check(id)];

    /// <inheritdoc />
    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>();
        int previous = -1;
        foreach (var id in ids)
        {
            var piece = GetTokenBytes(id);
            bool drop = piece.Length > 0 && piece[0] == (byte)' ' && DropsLeadingSpaceAfter(previous);
            bytes.AddRange(drop ? piece[1..] : piece);
            previous = id;
        }

        return Utf8.GetString([.. bytes]);
    }

    private int Check(int id) => (uint)id < (uint)_bytes.Length
        ? id
        : throw new ArgumentOutOfRangeException(nameof(id), id, $"token id {id} is outside the vocabulary [0, {_bytes.Length}) of {Source}.");

    /// <summary>A byte-fallback piece <c>&lt;0xNN&gt;</c> (two upper-case hex digits), as SentencePiece writes them.</summary>
    protected static bool TryParseBytePiece(string piece, out byte value)
    {
        value = 0;
        return piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[5] == '>'
            && byte.TryParse(piece.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out value);
    }

    /// <summary>Throws the error for a file that is not what the reader expects.</summary>
    protected static OnnxGptException Bad(string source, string what) => new($"{source}: {what}");
}

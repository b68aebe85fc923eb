using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Tokenization;

/// <summary>
/// The tokenizer the runtime talks to. Every token stands for a fixed byte sequence (UTF-8 text for character
/// and special tokens, raw bytes for byte-level BPE pieces), so text can be streamed token by token with
/// <see cref="StreamingDecoder"/> without ever splitting a character. Implementations are immutable and
/// thread-safe; build them with <see cref="TokenizerFactory"/>.
/// </summary>
public interface ITextTokenizer
{
    /// <summary>The <see cref="TokenizerSpec.Kind"/> this tokenizer was built from.</summary>
    string Kind { get; }

    /// <summary>One more than the largest token id (ids may have gaps in Hugging Face vocabularies).</summary>
    int VocabularySize { get; }

    /// <summary>Token ids of <paramref name="text"/>. Special tokens written in the text (<c>&lt;|endoftext|&gt;</c>) map to their ids.</summary>
    /// <exception cref="OnnxGptException">The text holds a character the vocabulary cannot represent; the message names it and its position.</exception>
    int[] Encode(string text);

    /// <summary>Text of <paramref name="ids"/>: their bytes concatenated and read as UTF-8 (invalid sequences become U+FFFD).</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is negative, at least <see cref="VocabularySize"/>, or has no token.</exception>
    string Decode(ReadOnlySpan<int> ids);

    /// <summary>The bytes token <paramref name="id"/> stands for; a byte-level BPE piece may end inside a UTF-8 character.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is negative, at least <see cref="VocabularySize"/>, or has no token.</exception>
    ReadOnlySpan<byte> GetTokenBytes(int id);

    /// <summary>Whether <paramref name="id"/> is a special (added) token such as <c>&lt;|endoftext|&gt;</c>.</summary>
    bool IsSpecialToken(int id);

    /// <summary>The begin-of-sequence id the tokenizer's files name (SentencePiece's <c>&lt;s&gt;</c>), or null.</summary>
    int? BosTokenId => null;

    /// <summary>The end-of-sequence id the tokenizer's files name (SentencePiece's <c>&lt;/s&gt;</c>), or null.</summary>
    int? EosTokenId => null;

    /// <summary>
    /// Whether a text that starts a sequence is prefixed with <see cref="BosTokenId"/> (Llama's rule: its
    /// SentencePiece tokenizers and llama2.c's <c>run.c</c> both add it). <see cref="Encode"/> never adds it: a host
    /// adds it once, at the start of a sequence.
    /// </summary>
    bool AddsBosToken => false;

    /// <summary>
    /// Whether a token's leading space is left out of the text when it follows <paramref name="previousToken"/> (−1:
    /// nothing, the start of the text). SentencePiece writes a word's space into the word's token ("▁Once") and adds
    /// one before the first word; decoding drops it again at the start and after <c>&lt;s&gt;</c>.
    /// </summary>
    bool DropsLeadingSpaceAfter(int previousToken) => false;
}

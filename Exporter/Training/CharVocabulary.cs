using System.Text;
using OnnxGpt.Contracts;

namespace OnnxGpt.Training;

/// <summary>
/// A character-level vocabulary: the distinct characters (Unicode scalar values) of a corpus, sorted by code point,
/// token i being the i-th. No begin/end-of-sequence token: generation starts from a prompt and stops at a length.
/// </summary>
public sealed class CharVocabulary
{
    private readonly Dictionary<Rune, int> _ids;

    public CharVocabulary(IEnumerable<Rune> characters)
    {
        ArgumentNullException.ThrowIfNull(characters);
        Characters = characters.Distinct().Order().ToArray();
        if (Characters.Count == 0)
        {
            throw new ArgumentException("a vocabulary needs at least one character.", nameof(characters));
        }

        _ids = Characters.Select((r, i) => (r, i)).ToDictionary(p => p.r, p => p.i);
    }

    /// <summary>Builds the vocabulary of <paramref name="text"/>.</summary>
    public static CharVocabulary FromText(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return new CharVocabulary(text.EnumerateRunes());
    }

    /// <summary>Reads a vocabulary back from its <see cref="TokenizerSpec"/>.</summary>
    public static CharVocabulary FromSpec(TokenizerSpec spec, string source = "tokenizer_spec.json")
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Kind != TokenizerSpec.CharKind || spec.Characters is null)
        {
            throw new OnnxGptException($"{source}: expected a '{TokenizerSpec.CharKind}' tokenizer with characters, found kind '{spec.Kind}'.");
        }

        var runes = new List<Rune>();
        foreach (var s in spec.Characters)
        {
            if (Rune.DecodeFromUtf16(s, out var r, out int used) != System.Buffers.OperationStatus.Done || used != s.Length)
            {
                throw new OnnxGptException($"{source}: character entry '{s}' is not exactly one Unicode character.");
            }

            runes.Add(r);
        }

        var vocabulary = new CharVocabulary(runes);
        if (vocabulary.Count != runes.Count || !vocabulary.Characters.SequenceEqual(runes))
        {
            throw new OnnxGptException($"{source}: characters must be distinct and sorted by code point.");
        }

        return vocabulary;
    }

    public IReadOnlyList<Rune> Characters { get; }

    public int Count => Characters.Count;

    /// <summary>The description a model's metadata carries (<c>kind: "char"</c>).</summary>
    public TokenizerSpec ToSpec() => new() { Kind = TokenizerSpec.CharKind, Characters = Characters.Select(r => r.ToString()).ToArray() };

    /// <summary>Token ids of <paramref name="text"/>; a character outside the vocabulary is an error naming it.</summary>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length);
        int index = 0;
        foreach (var r in text.EnumerateRunes())
        {
            if (!_ids.TryGetValue(r, out int id))
            {
                throw new OnnxGptException($"text: character U+{r.Value:X4} at index {index} is not in the {Count}-character vocabulary.");
            }

            ids.Add(id);
            index += r.Utf16SequenceLength;
        }

        return ids.ToArray();
    }

    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var sb = new StringBuilder();
        foreach (var id in ids)
        {
            if ((uint)id >= (uint)Count)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"token id {id} is outside [0, {Count}).");
            }

            sb.Append(Characters[id].ToString());
        }

        return sb.ToString();
    }
}

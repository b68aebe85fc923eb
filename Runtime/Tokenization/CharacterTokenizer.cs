using System.Text;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Tokenization;

/// <summary>
/// Character-level tokenizer: token i is the i-th entry of the character list (one Unicode character: a single
/// UTF-16 unit or a surrogate pair). There is no unknown token: encoding text with a character outside the list
/// throws an <see cref="OnnxGptException"/> naming the character and its position, because silently mapping it
/// to some id would feed the model text the user did not write.
/// </summary>
public sealed class CharacterTokenizer : ITextTokenizer
{
    private readonly string[] _characters;
    private readonly byte[][] _bytes;
    private readonly Dictionary<int, int> _idByCodePoint;

    /// <param name="characters">Token i's text at index i.</param>
    /// <param name="source">Where the list came from, for error messages.</param>
    /// <exception cref="OnnxGptException">An entry is not exactly one character, or appears twice.</exception>
    public CharacterTokenizer(IReadOnlyList<string> characters, string source = "character list")
    {
        ArgumentNullException.ThrowIfNull(characters);
        if (characters.Count == 0)
        {
            throw new OnnxGptException($"{source}: the character list is empty; expected at least one character.");
        }

        _characters = new string[characters.Count];
        _bytes = new byte[characters.Count][];
        _idByCodePoint = new Dictionary<int, int>(characters.Count);
        for (var id = 0; id < characters.Count; id++)
        {
            var entry = characters[id];
            if (entry is null
                || Rune.DecodeFromUtf16(entry, out var rune, out var used) != System.Buffers.OperationStatus.Done
                || used != entry.Length)
            {
                throw new OnnxGptException(
                    $"{source}: entry {id} is {Describe(entry)}; expected exactly one character (one UTF-16 unit or a surrogate pair).");
            }

            if (!_idByCodePoint.TryAdd(rune.Value, id))
            {
                throw new OnnxGptException(
                    $"{source}: character {Describe(entry)} appears at entries {_idByCodePoint[rune.Value]} and {id}; expected each once.");
            }

            _characters[id] = entry;
            _bytes[id] = Encoding.UTF8.GetBytes(entry);
        }
    }

    /// <inheritdoc/>
    public string Kind => TokenizerSpec.CharKind;

    /// <inheritdoc/>
    public int VocabularySize => _characters.Length;

    /// <summary>The character list, token i at index i.</summary>
    public IReadOnlyList<string> Characters => _characters;

    /// <exception cref="OnnxGptException">A character is not in the list; the message names it and its UTF-16 position.</exception>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length);
        for (var i = 0; i < text.Length;)
        {
            if (Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out var used) != System.Buffers.OperationStatus.Done)
            {
                throw new OnnxGptException($"Text to encode has an unpaired surrogate U+{(int)text[i]:X4} at position {i}; expected valid UTF-16 text.");
            }

            if (!_idByCodePoint.TryGetValue(rune.Value, out var id))
            {
                throw new OnnxGptException(
                    $"Text to encode has character {Describe(rune.ToString())} at position {i}, which is not in the " +
                    $"{_characters.Length}-character vocabulary of this model; remove or replace it.");
            }

            ids.Add(id);
            i += used;
        }

        return [.. ids];
    }

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids)
    {
        var builder = new StringBuilder(ids.Length);
        foreach (var id in ids)
        {
            CheckId(id);
            builder.Append(_characters[id]);
        }

        return builder.ToString();
    }

    /// <inheritdoc/>
    public ReadOnlySpan<byte> GetTokenBytes(int id)
    {
        CheckId(id);
        return _bytes[id];
    }

    /// <inheritdoc/>
    public bool IsSpecialToken(int id) => false;

    private void CheckId(int id)
    {
        if ((uint)id >= (uint)_characters.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(id), id, $"Token id {id} is outside the character vocabulary of {_characters.Length} ids.");
        }
    }

    /// <summary>A character for a message: quoted when printable, always with its code units ("'é' (U+00E9)", "U+000A").</summary>
    private static string Describe(string? s)
    {
        if (s is null)
        {
            return "null";
        }

        if (s.Length == 0)
        {
            return "an empty string";
        }

        // Code points, not UTF-16 units: an emoji is U+1F642, a lone surrogate its own U+D83D.
        var codes = new List<string>();
        for (var i = 0; i < s.Length;)
        {
            if (Rune.DecodeFromUtf16(s.AsSpan(i), out var rune, out var used) == System.Buffers.OperationStatus.Done)
            {
                codes.Add($"U+{rune.Value:X4}");
                i += used;
            }
            else
            {
                codes.Add($"U+{(int)s[i]:X4}");
                i++;
            }
        }

        var printable = !s.Any(char.IsControl) && !HasLoneSurrogate(s);
        var codeText = string.Join(" ", codes);
        return printable ? $"'{s}' ({codeText})" : codeText;
    }

    private static bool HasLoneSurrogate(string s)
    {
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(s[i]))
            {
                return true;
            }
        }

        return false;
    }
}

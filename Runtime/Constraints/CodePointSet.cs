using System.Text;

namespace OnnxGpt.Runtime.Constraints;

/// <summary>
/// An immutable set of Unicode scalar values as sorted, disjoint, non-adjacent inclusive ranges; surrogates
/// (U+D800..U+DFFF) are never members, so every member has a UTF-8 encoding. Turns itself into UTF-8 byte-range
/// sequences (<see cref="ToUtf8Sequences"/>), which is how a character class becomes bytes.
/// </summary>
internal sealed class CodePointSet : IEquatable<CodePointSet>
{
    public const int MaxCodePoint = 0x10FFFF;

    private readonly (int Low, int High)[] _ranges;

    private CodePointSet((int Low, int High)[] ranges) => _ranges = ranges;

    public static CodePointSet Empty { get; } = new([]);

    /// <summary>Every scalar value.</summary>
    public static CodePointSet All { get; } = FromRanges([(0, MaxCodePoint)]);

    public IReadOnlyList<(int Low, int High)> Ranges => _ranges;

    public bool IsEmpty => _ranges.Length == 0;

    /// <summary>The set of the given ranges (in any order, overlapping or not), less the surrogates.</summary>
    public static CodePointSet FromRanges(IEnumerable<(int Low, int High)> ranges)
    {
        var list = new List<(int Low, int High)>();
        foreach (var (low, high) in ranges)
        {
            int lo = Math.Max(0, low), hi = Math.Min(MaxCodePoint, high);
            if (lo > hi)
            {
                continue;
            }

            // Cut out the surrogates.
            if (lo < 0xD800 && hi >= 0xD800)
            {
                list.Add((lo, 0xD7FF));
                if (hi > 0xDFFF)
                {
                    list.Add((0xE000, hi));
                }
            }
            else if (lo >= 0xD800 && lo <= 0xDFFF)
            {
                if (hi > 0xDFFF)
                {
                    list.Add((0xE000, hi));
                }
            }
            else
            {
                list.Add((lo, hi));
            }
        }

        list.Sort();
        var merged = new List<(int Low, int High)>();
        foreach (var r in list)
        {
            if (merged.Count > 0 && r.Low <= merged[^1].High + 1)
            {
                merged[^1] = (merged[^1].Low, Math.Max(merged[^1].High, r.High));
            }
            else
            {
                merged.Add(r);
            }
        }

        return new CodePointSet([.. merged]);
    }

    public static CodePointSet Of(int codePoint) => FromRanges([(codePoint, codePoint)]);

    public static CodePointSet Of(string characters)
    {
        var ranges = new List<(int, int)>();
        foreach (var rune in characters.EnumerateRunes())
        {
            ranges.Add((rune.Value, rune.Value));
        }

        return FromRanges(ranges);
    }

    public bool Contains(int codePoint)
    {
        int lo = 0, hi = _ranges.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            if (codePoint < _ranges[mid].Low)
            {
                hi = mid - 1;
            }
            else if (codePoint > _ranges[mid].High)
            {
                lo = mid + 1;
            }
            else
            {
                return true;
            }
        }

        return false;
    }

    public CodePointSet Union(CodePointSet other) => FromRanges(_ranges.Concat(other._ranges));

    public CodePointSet Complement()
    {
        var result = new List<(int, int)>();
        int next = 0;
        foreach (var (low, high) in _ranges)
        {
            if (low > next)
            {
                result.Add((next, low - 1));
            }

            next = high + 1;
        }

        if (next <= MaxCodePoint)
        {
            result.Add((next, MaxCodePoint));
        }

        return FromRanges(result);
    }

    public CodePointSet Intersect(CodePointSet other)
    {
        if (ReferenceEquals(other, All))
        {
            return this;
        }

        var result = new List<(int, int)>();
        int i = 0, j = 0;
        while (i < _ranges.Length && j < other._ranges.Length)
        {
            int lo = Math.Max(_ranges[i].Low, other._ranges[j].Low);
            int hi = Math.Min(_ranges[i].High, other._ranges[j].High);
            if (lo <= hi)
            {
                result.Add((lo, hi));
            }

            if (_ranges[i].High < other._ranges[j].High)
            {
                i++;
            }
            else
            {
                j++;
            }
        }

        return FromRanges(result);
    }

    public CodePointSet Except(CodePointSet other) => Intersect(other.Complement());

    /// <summary>
    /// The UTF-8 encodings of the members, as sequences of byte ranges: every member's encoding matches exactly one
    /// sequence (byte i in range i), and every byte string a sequence matches is a member's encoding. Ranges are
    /// split by encoded length, then wherever a continuation byte would not span its whole 0x80..0xBF range.
    /// </summary>
    public List<(byte Low, byte High)[]> ToUtf8Sequences()
    {
        var result = new List<(byte Low, byte High)[]>();
        foreach (var (low, high) in _ranges)
        {
            // Split by encoded length: 1, 2, 3, 4 bytes.
            Split(low, Math.Min(high, 0x7F), result);
            Split(Math.Max(low, 0x80), Math.Min(high, 0x7FF), result);
            Split(Math.Max(low, 0x800), Math.Min(high, 0xFFFF), result);
            Split(Math.Max(low, 0x10000), high, result);
        }

        return result;
    }

    private static void Split(int low, int high, List<(byte, byte)[]> result)
    {
        if (low > high)
        {
            return;
        }

        int length = Length(low);
        // Find the largest suffix of continuation bytes over which [low, high] can be split into aligned blocks.
        for (int i = 1; i < length; i++)
        {
            int m = (1 << (6 * i)) - 1;   // the low 6*i bits
            if ((low & ~m) != (high & ~m))
            {
                if ((low & m) != 0)
                {
                    Split(low, low | m, result);
                    Split((low | m) + 1, high, result);
                    return;
                }

                if ((high & m) != m)
                {
                    Split(low, (high & ~m) - 1, result);
                    Split(high & ~m, high, result);
                    return;
                }
            }
        }

        Span<byte> a = stackalloc byte[4], b = stackalloc byte[4];
        Encode(low, a);
        Encode(high, b);
        var seq = new (byte, byte)[length];
        for (int i = 0; i < length; i++)
        {
            seq[i] = (a[i], b[i]);
        }

        result.Add(seq);
    }

    private static int Length(int cp) => cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;

    private static void Encode(int cp, Span<byte> bytes) => new Rune(cp).EncodeToUtf8(bytes);

    public bool Equals(CodePointSet? other) => other is not null && _ranges.AsSpan().SequenceEqual(other._ranges);

    public override bool Equals(object? obj) => Equals(obj as CodePointSet);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var r in _ranges)
        {
            hash.Add(r);
        }

        return hash.ToHashCode();
    }
}

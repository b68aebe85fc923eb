using System.Globalization;
using static OnnxGpt.Runtime.Constraints.JsonGrammarParts;

namespace OnnxGpt.Runtime.Constraints;

/// <summary>
/// The JSON integers between two bounds as a grammar of digits (no leading zeros, no "-0"): the range is split by
/// sign and by number of digits, and each same-length range into a prefix shared by both ends, then a first digit
/// strictly between (any digits after it) and the two edges, recursively.
/// </summary>
internal static class IntegerRanges
{
    /// <summary>The largest magnitude an integer gets (<see cref="JsonGrammarParts.MaxIntegerDigits"/> digits).</summary>
    public static readonly long Largest = (long)Math.Pow(10, MaxIntegerDigits) - 1;

    public static GrammarNode Between(long lo, long hi)
    {
        var alternatives = new List<GrammarNode>();
        if (lo < 0)
        {
            alternatives.Add(Seq(Lit("-"), NonNegative(Math.Max(1, -hi), -lo)));
        }

        if (hi >= 0)
        {
            alternatives.Add(NonNegative(Math.Max(0, lo), hi));
        }

        return Choice([.. alternatives]);
    }

    private static GrammarNode NonNegative(long lo, long hi)
    {
        var alternatives = new List<GrammarNode>();
        int from = DigitCount(lo), to = DigitCount(hi);
        for (int d = from; d <= to; d++)
        {
            long first = d == 1 ? 0 : Pow10(d - 1), last = Pow10(d) - 1;
            long a = Math.Max(lo, first), b = Math.Min(hi, last);
            if (a <= b)
            {
                alternatives.Add(SameLength(a.ToString(CultureInfo.InvariantCulture), b.ToString(CultureInfo.InvariantCulture)));
            }
        }

        return Choice([.. alternatives]);
    }

    /// <summary>The digit strings from <paramref name="lo"/> to <paramref name="hi"/>, both of the same length.</summary>
    private static GrammarNode SameLength(string lo, string hi)
    {
        if (lo.Length == 0)
        {
            return Lit("");
        }

        char l = lo[0], h = hi[0];
        string loRest = lo[1..], hiRest = hi[1..];
        if (l == h)
        {
            return Seq(Lit(l.ToString()), SameLength(loRest, hiRest));
        }

        if (loRest.All(c => c == '0') && hiRest.All(c => c == '9'))
        {
            return Seq(Class(CodePointSet.FromRanges([(l, h)])), AnyDigits(loRest.Length));
        }

        var alternatives = new List<GrammarNode> { Seq(Lit(l.ToString()), SameLength(loRest, new string('9', loRest.Length))) };
        if (h - l > 1)
        {
            alternatives.Add(Seq(Class(CodePointSet.FromRanges([(l + 1, h - 1)])), AnyDigits(loRest.Length)));
        }

        alternatives.Add(Seq(Lit(h.ToString()), SameLength(new string('0', hiRest.Length), hiRest)));
        return Choice([.. alternatives]);
    }

    private static GrammarNode AnyDigits(int n) => n == 0 ? Lit("") : Repeat(Class(Digits), n, n);

    private static int DigitCount(long n) => n.ToString(CultureInfo.InvariantCulture).Length;

    private static long Pow10(int n)
    {
        long p = 1;
        for (int i = 0; i < n; i++)
        {
            p *= 10;
        }

        return p;
    }
}

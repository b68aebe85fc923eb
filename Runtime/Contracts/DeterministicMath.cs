namespace OnnxGpt.Contracts;

/// <summary>
/// Elementary functions written in plain IEEE double arithmetic (+, −, ×, ÷ and bit operations only), so they give
/// the same bits on every machine and runtime, unlike <see cref="Math.Log(double)"/>, whose last bits depend on
/// the platform's C library. Used where results must be reproducible, e.g. turning uniform into normal samples.
/// </summary>
internal static class DeterministicMath
{
    // ln 2 split so that e * Ln2Hi is exact for any double exponent e (Ln2Hi has its low 32 bits zero).
    private const double Ln2Hi = 6.93147180369123816490e-01;
    private const double Ln2Lo = 1.90821492927058770002e-10;
    private const double Sqrt2 = 1.4142135623730951;
    private const double TwoTo54 = 18014398509481984.0;

    /// <summary>
    /// Natural logarithm, accurate to a few units in the last place. x = m · 2^e with m in (√½, √2], then
    /// ln m = 2·atanh(t) with t = (m − 1)/(m + 1), |t| ≤ 0.1716, summed as a fixed 13-term series
    /// (the next term is below 2⁻⁵⁶ relative).
    /// </summary>
    public static double Log(double x)
    {
        if (double.IsNaN(x) || x < 0)
        {
            return double.NaN;
        }

        if (x == 0)
        {
            return double.NegativeInfinity;
        }

        if (double.IsPositiveInfinity(x))
        {
            return x;
        }

        int e = 0;
        ulong bits = BitConverter.DoubleToUInt64Bits(x);
        if ((bits >> 52) == 0)
        {
            // Subnormal: scale into the normal range first (exact).
            bits = BitConverter.DoubleToUInt64Bits(x * TwoTo54);
            e = -54;
        }

        e += (int)(bits >> 52) - 1023;
        double m = BitConverter.UInt64BitsToDouble((bits & 0x000F_FFFF_FFFF_FFFFUL) | 0x3FF0_0000_0000_0000UL);
        if (m > Sqrt2)
        {
            m *= 0.5;
            e++;
        }

        double t = (m - 1.0) / (m + 1.0);
        double t2 = t * t;
        // atanh(t) / t = 1 + t²/3 + t⁴/5 + ... + t²⁴/25, by Horner's rule.
        double p = 1.0 / 25;
        p = p * t2 + 1.0 / 23;
        p = p * t2 + 1.0 / 21;
        p = p * t2 + 1.0 / 19;
        p = p * t2 + 1.0 / 17;
        p = p * t2 + 1.0 / 15;
        p = p * t2 + 1.0 / 13;
        p = p * t2 + 1.0 / 11;
        p = p * t2 + 1.0 / 9;
        p = p * t2 + 1.0 / 7;
        p = p * t2 + 1.0 / 5;
        p = p * t2 + 1.0 / 3;
        double tail = t * t2 * p; // atanh(t) − t
        return e * Ln2Hi + (2.0 * t + (2.0 * tail + e * Ln2Lo));
    }
}

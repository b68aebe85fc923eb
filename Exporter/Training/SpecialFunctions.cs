namespace OnnxGpt.Training;

/// <summary>The error function, which .NET's <see cref="Math"/> lacks, to double precision.</summary>
internal static class SpecialFunctions
{
    /// <summary>erf(x): a Taylor series for |x| &lt; 3, the continued fraction of erfc beyond, exactly ±1 past 6.</summary>
    public static double Erf(double x)
    {
        if (double.IsNaN(x))
        {
            return double.NaN;
        }

        double ax = Math.Abs(x);
        if (ax >= 6)
        {
            return Math.Sign(x);
        }

        if (ax < 3)
        {
            // erf(x) = 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1))
            double x2 = x * x, term = x, sum = x;
            for (int n = 1; n < 200; n++)
            {
                term *= -x2 / n;
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17 * Math.Abs(sum))
                {
                    break;
                }
            }

            return 2.0 / Math.Sqrt(Math.PI) * sum;
        }

        // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))), evaluated from the tail.
        double k = ax;
        for (int n = 80; n >= 1; n--)
        {
            k = ax + n / 2.0 / k;
        }

        double erfc = Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / k;
        return Math.Sign(x) * (1.0 - erfc);
    }
}

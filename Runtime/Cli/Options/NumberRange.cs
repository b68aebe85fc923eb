using System.Globalization;

namespace OnnxGpt.Cli.Options;

/// <summary>The numbers an option accepts, written the way its error message states them ("a number in (0, 1]").</summary>
/// <param name="Min">The lowest value, or negative infinity for none.</param>
/// <param name="Max">The highest value, or positive infinity for none.</param>
/// <param name="MinExclusive">True when <paramref name="Min"/> itself is not allowed.</param>
/// <param name="MaxExclusive">True when <paramref name="Max"/> itself is not allowed.</param>
internal readonly record struct NumberRange(double Min, double Max, bool MinExclusive = false, bool MaxExclusive = false)
{
    /// <summary>Numbers at least <paramref name="min"/>.</summary>
    public static NumberRange AtLeast(double min) => new(min, double.PositiveInfinity);

    /// <summary>Numbers above <paramref name="min"/>.</summary>
    public static NumberRange Above(double min) => new(min, double.PositiveInfinity, MinExclusive: true);

    /// <summary>Whether <paramref name="value"/> is allowed.</summary>
    public bool Contains(double value) =>
        (MinExclusive ? value > Min : value >= Min) && (MaxExclusive ? value < Max : value <= Max);

    /// <inheritdoc/>
    public override string ToString()
    {
        string F(double v) => v.ToString(CultureInfo.InvariantCulture);
        if (double.IsPositiveInfinity(Max))
        {
            return double.IsNegativeInfinity(Min) ? "a number" : $"a number {(MinExclusive ? ">" : ">=")} {F(Min)}";
        }

        if (double.IsNegativeInfinity(Min))
        {
            return $"a number {(MaxExclusive ? "<" : "<=")} {F(Max)}";
        }

        return $"a number in {(MinExclusive ? '(' : '[')}{F(Min)}, {F(Max)}{(MaxExclusive ? ')' : ']')}";
    }
}

using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace OnnxGpt.Cli.Options;

/// <summary>
/// Factories for the options of every command: each option is declared once, with its type, default, allowed values
/// and description. Values are parsed here (invariant culture) so that a wrong value is reported in the user's words,
/// naming the option, the value found and what is allowed, never a .NET type. Every option's help line ends with its
/// default: a fixed one through System.CommandLine's own <c>[default: ...]</c>, a contextual one ("the model's")
/// written in the same form.
/// </summary>
internal static class CliOption
{
    /// <summary>A switch that takes no value; off unless given.</summary>
    public static Option<bool> Flag(string name, string description, params string[] aliases) =>
        new(name, aliases) { Description = WithDefault(description, "off"), Arity = ArgumentArity.Zero };

    /// <summary>A text value that must be given (a required option is marked so in help).</summary>
    public static Option<string> RequiredText(string name, string helpName, string description, params string[] aliases) =>
        new(name, aliases) { Description = description, HelpName = helpName, Required = true };

    /// <summary>A text value that may be left out; <paramref name="defaultText"/> says what happens then.</summary>
    public static Option<string?> Text(string name, string helpName, string description, string defaultText, params string[] aliases) =>
        new(name, aliases) { Description = WithDefault(description, defaultText), HelpName = helpName };

    /// <summary>A text value with a fixed default.</summary>
    public static Option<string> Text(string name, string helpName, string description, Func<string> defaultValue) =>
        new(name) { Description = description, HelpName = helpName, DefaultValueFactory = _ => defaultValue() };

    /// <summary>A text value that may be given several times (<c>--stop a --stop b</c>).</summary>
    public static Option<string[]> Repeated(string name, string helpName, string description, string defaultText) =>
        new(name)
        {
            Description = WithDefault(description + " (repeatable)", defaultText),
            HelpName = helpName,
            Arity = ArgumentArity.OneOrMore,
            AllowMultipleArgumentsPerToken = false,
        };

    /// <summary>One word of a fixed set, with a fixed default; the words are offered as completions.</summary>
    /// <param name="helpName">The value's placeholder in help; null shows the words themselves (a short list).</param>
    public static Option<string> Choice(string name, string description, string defaultValue, string[] choices, string? helpName = null)
    {
        var option = new Option<string>(name)
        {
            Description = description,
            HelpName = helpName ?? string.Join('|', choices),
            DefaultValueFactory = _ => defaultValue,
            CustomParser = r => ParseChoice(r, name, choices) ?? defaultValue,
        };
        option.CompletionSources.Add(choices);
        return option;
    }

    /// <summary>One word of a fixed set that may be left out (null); <paramref name="defaultText"/> says what happens then.</summary>
    /// <param name="helpName">The value's placeholder in help; null shows the words themselves (a short list).</param>
    public static Option<string?> OptionalChoice(string name, string description, string defaultText, string[] choices, string? helpName = null)
    {
        var option = new Option<string?>(name)
        {
            Description = WithDefault(description, defaultText),
            HelpName = helpName ?? string.Join('|', choices),
            CustomParser = r => ParseChoice(r, name, choices),
        };
        option.CompletionSources.Add(choices);
        return option;
    }

    /// <summary>A whole number in [<paramref name="min"/>, <paramref name="max"/>] with a fixed default.</summary>
    /// <param name="rule">A further rule: the value's problem in words ("must be a power of two"), or null when it is fine.</param>
    public static Option<int> Int(string name, string helpName, string description, int defaultValue, int min = int.MinValue, int max = int.MaxValue,
        Func<int, string?>? rule = null) =>
        new(name)
        {
            Description = description,
            HelpName = helpName,
            DefaultValueFactory = _ => defaultValue,
            CustomParser = r => ParseWhole(r, name, min, max) is { } v && Check(r, name, (int)v, rule) ? (int)v : defaultValue,
        };

    /// <summary>A whole number in [<paramref name="min"/>, <paramref name="max"/>] that may be left out (null).</summary>
    public static Option<int?> OptionalInt(string name, string helpName, string description, string defaultText, int min = int.MinValue, int max = int.MaxValue) =>
        new(name)
        {
            Description = WithDefault(description, defaultText),
            HelpName = helpName,
            CustomParser = r => ParseWhole(r, name, min, max) is { } v ? (int)v : null,
        };

    /// <summary>A whole number in [<paramref name="min"/>, <paramref name="max"/>] with a fixed default, wider than an int.</summary>
    public static Option<long> Long(string name, string helpName, string description, long defaultValue, long min = long.MinValue, long max = long.MaxValue) =>
        new(name)
        {
            Description = description,
            HelpName = helpName,
            DefaultValueFactory = _ => defaultValue,
            CustomParser = r => ParseWhole(r, name, min, max) ?? defaultValue,
        };

    /// <summary>A whole number that may be left out (null), wider than an int.</summary>
    public static Option<long?> OptionalLong(string name, string helpName, string description, string defaultText, long min = long.MinValue, long max = long.MaxValue) =>
        new(name)
        {
            Description = WithDefault(description, defaultText),
            HelpName = helpName,
            CustomParser = r => ParseWhole(r, name, min, max),
        };

    /// <summary>A finite number in the range <paramref name="range"/>, with a fixed default.</summary>
    public static Option<double> Number(string name, string helpName, string description, double defaultValue, NumberRange range) =>
        new(name)
        {
            Description = description,
            HelpName = helpName,
            DefaultValueFactory = _ => defaultValue,
            CustomParser = r => ParseNumber(r, name, range) ?? defaultValue,
        };

    /// <summary>A finite number in the range <paramref name="range"/> that may be left out (null).</summary>
    public static Option<double?> OptionalNumber(string name, string helpName, string description, string defaultText, NumberRange range) =>
        new(name)
        {
            Description = WithDefault(description, defaultText),
            HelpName = helpName,
            CustomParser = r => ParseNumber(r, name, range),
        };

    /// <summary>Whole numbers written as <c>1,2,3</c> (spaces allowed), each at least <paramref name="min"/>.</summary>
    public static Option<int[]?> IntList(string name, string helpName, string description, string defaultText, int min = int.MinValue) =>
        new(name)
        {
            Description = WithDefault(description, defaultText),
            HelpName = helpName,
            CustomParser = r => ParseIntList(r, name, min),
        };

    /// <summary>
    /// A switch that may take one word of a fixed set: alone it means <paramref name="whenAlone"/> (<c>--early-stopping</c>),
    /// with a word that word (<c>--early-stopping never</c>); left out, null.
    /// </summary>
    public static Option<string?> FlagOrChoice(string name, string description, string whenAlone, string[] choices)
    {
        var option = new Option<string?>(name)
        {
            Description = WithDefault(description, "off"),
            HelpName = string.Join('|', choices),
            Arity = ArgumentArity.ZeroOrOne,
            CustomParser = r => r.Tokens.Count == 0 ? whenAlone : ParseChoice(r, name, choices),
        };
        option.CompletionSources.Add(choices);
        return option;
    }

    /// <summary>A value parsed by <paramref name="parse"/>, which returns null and an error in the user's words for a bad value.</summary>
    public static Option<T?> Custom<T>(string name, string helpName, string description, string defaultText, Func<string, (T? Value, string? Error)> parse)
        where T : class =>
        new(name)
        {
            Description = WithDefault(description, defaultText),
            HelpName = helpName,
            CustomParser = r =>
            {
                if (r.Tokens.Count == 0)
                {
                    return null;
                }

                var (value, error) = parse(r.Tokens[^1].Value);
                if (error is not null)
                {
                    r.AddError($"{name}: {error}");
                }

                return value;
            },
        };

    /// <summary>True when the option was typed on the command line (not just its default).</summary>
    public static bool Given(this SymbolResult result, Option option) => result.GetResult(option) is { Implicit: false };

    /// <summary>
    /// The option's value for a rule between options, or the type's default when the value itself was wrong (that
    /// error is already reported; System.CommandLine throws on reading it).
    /// </summary>
    public static T? ValueIfValid<T>(this SymbolResult result, Option<T> option)
    {
        try
        {
            return result.GetValue(option);
        }
        catch (InvalidOperationException)
        {
            return default;
        }
    }

    private static bool Check(ArgumentResult r, string name, int value, Func<int, string?>? rule)
    {
        if (rule?.Invoke(value) is { } problem)
        {
            r.AddError($"{name} {problem}; found {value}.");
            return false;
        }

        return true;
    }

    private static string WithDefault(string description, string defaultText) => $"{description} [default: {defaultText}]";

    private static string? ParseChoice(ArgumentResult r, string name, string[] choices)
    {
        if (r.Tokens.Count == 0)
        {
            return null;
        }

        string text = r.Tokens[^1].Value;
        if (Array.Find(choices, c => string.Equals(c, text, StringComparison.OrdinalIgnoreCase)) is { } choice)
        {
            return choice;
        }

        r.AddError($"{name} must be one of {string.Join(", ", choices)}; found '{text}'.");
        return null;
    }

    private static long? ParseWhole(ArgumentResult r, string name, long min, long max)
    {
        if (r.Tokens.Count == 0)
        {
            return null;
        }

        string text = r.Tokens[^1].Value;
        if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value))
        {
            r.AddError($"{name}: '{text}' is not a whole number; expected {WholeRange(min, max)}.");
            return null;
        }

        if (value < min || value > max)
        {
            r.AddError($"{name} must be {WholeRange(min, max)}; found {text}.");
            return null;
        }

        return value;
    }

    private static double? ParseNumber(ArgumentResult r, string name, NumberRange range)
    {
        if (r.Tokens.Count == 0)
        {
            return null;
        }

        string text = r.Tokens[^1].Value;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value))
        {
            r.AddError($"{name}: '{text}' is not a number; expected {range}.");
            return null;
        }

        if (!range.Contains(value))
        {
            r.AddError($"{name} must be {range}; found {text}.");
            return null;
        }

        return value;
    }

    private static int[]? ParseIntList(ArgumentResult r, string name, int min)
    {
        if (r.Tokens.Count == 0)
        {
            return null;
        }

        string text = r.Tokens[^1].Value;
        var parts = text.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0)
        {
            r.AddError($"{name}: '{text}' is empty; expected whole numbers separated by commas, e.g. 1,2,3.");
            return null;
        }

        var values = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out values[i]))
            {
                r.AddError($"{name}: '{parts[i]}' is not a whole number; expected whole numbers separated by commas, e.g. 1,2,3.");
                return null;
            }

            if (values[i] < min)
            {
                r.AddError($"{name}: every value must be {WholeRange(min, long.MaxValue)}; found {parts[i]}.");
                return null;
            }
        }

        return values;
    }

    private static string WholeRange(long min, long max) => (min, max) switch
    {
        (long.MinValue or int.MinValue, long.MaxValue or int.MaxValue) => "a whole number",
        (_, long.MaxValue or int.MaxValue) => $"a whole number >= {min}",
        (long.MinValue or int.MinValue, _) => $"a whole number <= {max}",
        _ => $"a whole number from {min} to {max}",
    };
}

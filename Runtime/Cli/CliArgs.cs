using System.Globalization;

namespace OnnxGpt.Cli;

/// <summary>
/// A small, strict parser for <c>--name value</c>, <c>--flag</c> and positional arguments. Every option a command
/// does not read is an error, so a typo never passes silently.
/// </summary>
public sealed class CliArgs
{
    private readonly Dictionary<string, List<string>> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);
    private readonly List<string> _positional = [];

    /// <param name="args">The arguments after the command name.</param>
    /// <param name="flagNames">Options that take no value (without the leading dashes).</param>
    public CliArgs(IReadOnlyList<string> args, IEnumerable<string> flagNames)
    {
        var flags = new HashSet<string>(flagNames, StringComparer.Ordinal);
        for (int i = 0; i < args.Count; i++)
        {
            var a = args[i];
            if (a.StartsWith("--", StringComparison.Ordinal) && a.Length > 2)
            {
                var name = a[2..];
                string? inline = null;
                int eq = name.IndexOf('=', StringComparison.Ordinal);
                if (eq >= 0)
                {
                    inline = name[(eq + 1)..];
                    name = name[..eq];
                }

                if (flags.Contains(name))
                {
                    if (inline is not null)
                    {
                        throw new CliUsageException($"--{name} takes no value.");
                    }

                    _flags.Add(name);
                    continue;
                }

                var value = inline ?? (i + 1 < args.Count ? args[++i] : throw new CliUsageException($"--{name} needs a value."));
                if (!_options.TryGetValue(name, out var list))
                {
                    _options[name] = list = [];
                }

                list.Add(value);
            }
            else
            {
                _positional.Add(a);
            }
        }
    }

    public IReadOnlyList<string> Positional => _positional;

    public bool Flag(string name)
    {
        _read.Add(name);
        return _flags.Contains(name);
    }

    public string? Option(string name)
    {
        _read.Add(name);
        if (!_options.TryGetValue(name, out var list))
        {
            return null;
        }

        return list.Count == 1 ? list[0] : throw new CliUsageException($"--{name} was given {list.Count} times; give it once.");
    }

    public IReadOnlyList<string> Options(string name)
    {
        _read.Add(name);
        return _options.TryGetValue(name, out var list) ? list : [];
    }

    public string Required(string name) => Option(name) ?? throw new CliUsageException($"--{name} is required.");

    public int? Int(string name) => Parse(name, s => int.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture));

    public long? Long(string name) => Parse(name, s => long.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture));

    public double? Double(string name) => Parse(name, s => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture));

    /// <summary>One of a fixed set of words.</summary>
    public string? Choice(string name, params string[] choices)
    {
        var v = Option(name);
        if (v is not null && !choices.Contains(v, StringComparer.Ordinal))
        {
            throw new CliUsageException($"--{name} must be one of {string.Join(", ", choices)}, not '{v}'.");
        }

        return v;
    }

    /// <summary>Call after reading every option: anything not read is an unknown option.</summary>
    public void EnsureAllRead(int maxPositional = 0)
    {
        var unknown = _options.Keys.Concat(_flags).Where(k => !_read.Contains(k)).ToList();
        if (unknown.Count > 0)
        {
            throw new CliUsageException($"unknown option(s): {string.Join(", ", unknown.Select(u => "--" + u))}.");
        }

        if (_positional.Count > maxPositional)
        {
            throw new CliUsageException($"unexpected argument '{_positional[maxPositional]}'.");
        }
    }

    private T? Parse<T>(string name, Func<string, T> parse) where T : struct
    {
        var v = Option(name);
        if (v is null)
        {
            return null;
        }

        try
        {
            return parse(v);
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new CliUsageException($"--{name}: '{v}' is not a valid {typeof(T).Name.ToLowerInvariant()}.");
        }
    }
}

/// <summary>Wrong command-line usage: printed with the command's usage line, exit code 2.</summary>
public sealed class CliUsageException(string message) : Exception(message);

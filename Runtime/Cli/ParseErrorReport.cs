using System.CommandLine;
using System.CommandLine.Parsing;

namespace OnnxGpt.Cli;

/// <summary>
/// Writes a failed parse as one line per problem on stderr, each starting with the command
/// (<c>onnxgpt generate: --top-p must be a number in (0, 1]; found 2.</c>). An unknown option or command comes with
/// the nearest known spelling. System.CommandLine's own report writes its suggestions to stdout (where
/// <c>--json</c> output goes) and suggests options for mistyped values, so the CLI words these lines itself.
/// </summary>
internal static class ParseErrorReport
{
    /// <summary>Writes the errors of <paramref name="parse"/>.</summary>
    public static void Write(ParseResult parse, TextWriter stderr)
    {
        var command = parse.CommandResult.Command;
        string prefix = CommandPath(parse.CommandResult);
        var unmatched = parse.UnmatchedTokens;
        foreach (var line in UnmatchedLines(parse, unmatched))
        {
            stderr.WriteLine($"{prefix}: {line}");
        }

        foreach (var error in parse.Errors)
        {
            bool aboutUnmatched = error.SymbolResult is CommandResult
                && error.Message.StartsWith("Unrecognized command or argument", StringComparison.Ordinal)
                && unmatched.Any(t => error.Message.Contains($"'{t}'", StringComparison.Ordinal));
            if (!aboutUnmatched && !(command is RootCommand && error.Message == "Required command was not provided."))
            {
                stderr.WriteLine($"{prefix}: {error.Message}");
            }
        }
    }

    /// <summary>The command as typed: <c>onnxgpt</c>, <c>onnxgpt generate</c>, <c>onnxgpt bench compare</c>.</summary>
    public static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? r = result; r is CommandResult c; r = r.Parent)
        {
            names.Add(c.Command is RootCommand ? "onnxgpt" : c.Command.Name);
        }

        names.Reverse();
        return string.Join(' ', names);
    }

    private static IEnumerable<string> UnmatchedLines(ParseResult parse, IReadOnlyList<string> unmatched)
    {
        var command = parse.CommandResult.Command;
        for (int i = 0; i < unmatched.Count; i++)
        {
            string token = unmatched[i];
            if (token.StartsWith('-') && token.Length > 1 && !double.TryParse(token, out _))
            {
                var names = OptionNames(command).ToList();
                string help = $"{CommandPath(parse.CommandResult)} --help";
                yield return $"unknown option '{token}'. {Suggest(token, names) ?? $"'{help}' lists the options."}";
            }
            else if (command is RootCommand)
            {
                var names = command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name).ToList();
                yield return $"unknown command '{token}'. {Suggest(token, names) ?? $"Commands: {string.Join(", ", names)}."}";
            }
            else if (i == 0 || !unmatched[i - 1].StartsWith('-'))
            {
                // Not the value of an unknown option just reported.
                yield return $"unexpected argument '{token}'.";
            }
        }
    }

    /// <summary>The option spellings valid on <paramref name="command"/>, its own and those its parents pass down (--help).</summary>
    private static IEnumerable<string> OptionNames(Command command)
    {
        var names = command.Options.Where(o => !o.Hidden).SelectMany(o => o.Aliases.Prepend(o.Name));
        foreach (var parent in command.Parents.OfType<Command>())
        {
            names = names.Concat(parent.Options.Where(o => o.Recursive && !o.Hidden).Select(o => o.Name));
        }

        return names.Where(n => n.StartsWith("--", StringComparison.Ordinal)).Distinct();
    }

    /// <summary>"Did you mean X?" for the nearest names (at most two edits, or a prefix), or null.</summary>
    internal static string? Suggest(string token, IReadOnlyList<string> names)
    {
        string bare = token.Split('=')[0];
        var scored = names
            .Select(n => (Name: n, Distance: n.StartsWith(bare, StringComparison.Ordinal) && bare.Length > 3 ? 0 : EditDistance(bare, n)))
            .Where(s => s.Distance <= Math.Max(1, Math.Min(2, bare.Length / 4)))
            .OrderBy(s => s.Distance).ThenBy(s => s.Name, StringComparer.Ordinal)
            .ToList();
        if (scored.Count == 0)
        {
            return null;
        }

        var best = scored.Where(s => s.Distance == scored[0].Distance).Take(3).Select(s => $"'{s.Name}'");
        return $"Did you mean {string.Join(" or ", best)}?";
    }

    /// <summary>Edits (insert, delete, substitute, swap two neighbours) that turn <paramref name="a"/> into <paramref name="b"/>.</summary>
    private static int EditDistance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (int j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }
}

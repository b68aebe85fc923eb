using System.CommandLine;
using System.CommandLine.Invocation;
using OnnxGpt.Cli.Commands;

namespace OnnxGpt.Cli;

/// <summary>
/// The <c>onnxgpt</c> command line on System.CommandLine: generated help (<c>--help</c> on every command), typo
/// suggestions, response files (<c>@FILE</c>, one argument or more per line), completion (<c>onnxgpt completion
/// bash|zsh|pwsh</c>) and exit codes 0 (success), 1 (runtime or model error), 2 (usage error).
/// </summary>
public static class Program
{
    /// <summary>Runs the command line on the console.</summary>
    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs the command line with the given writers (tests call this directly).</summary>
    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        var root = CreateRootCommand();
        if (args.Count > 0 && args[0] == "help")
        {
            // 'onnxgpt help [COMMAND]', as the CLI has always accepted.
            args = [.. args.Skip(1), "--help"];
        }

        var parse = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = ExpandResponseFile });
        var invocation = new InvocationConfiguration
        {
            Output = stdout,
            Error = stderr,
            EnableDefaultExceptionHandler = false,
            ProcessTerminationTimeout = null,   // Commands that can be stopped handle Ctrl+C themselves.
        };
        if (parse.Action is ParseErrorAction)
        {
            ParseErrorReport.Write(parse, stderr);
            return ExitCodes.Usage;
        }

        string name = ParseErrorReport.CommandPath(parse.CommandResult);
        try
        {
            return parse.Invoke(invocation);
        }
        catch (CliUsageException e)
        {
            stderr.WriteLine($"{name}: {e.Message}");
            return ExitCodes.Usage;
        }
        catch (OnnxGptException e)
        {
            stderr.WriteLine($"{name}: {LibraryMessages.ForCli(e.Message)}");
            return ExitCodes.Failure;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"{name}: {e.Message}");
            return ExitCodes.Failure;
        }
    }

    /// <summary>
    /// <c>@FILE</c> is a response file when FILE exists: its arguments, separated by spaces or lines (quotes group words,
    /// <c>#</c> starts a comment line). Otherwise the word is left as typed, so a prompt such as <c>--prompt "@juliet hi"</c>
    /// reaches the command.
    /// </summary>
    private static bool ExpandResponseFile(string file, out IReadOnlyList<string>? tokens, out string? error)
    {
        error = null;
        tokens = null;
        if (!File.Exists(file))
        {
            return false;
        }

        try
        {
            tokens = [.. File.ReadAllLines(file)
                .Where(line => !line.TrimStart().StartsWith('#'))
                .SelectMany(line => System.CommandLine.Parsing.CommandLineParser.SplitCommandLine(line))];
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error = $"cannot read the response file '{file}': {e.Message}";
            return false;
        }
    }

    /// <summary>Every command, in the order <c>onnxgpt --help</c> lists them. Add a command here and in Commands/.</summary>
    internal static RootCommand CreateRootCommand()
    {
        var root = new RootCommand("onnxgpt: export GPT models to ONNX and run them.")
        {
            new ExportCommand(),
            new InspectCommand(),
            new GenerateCommand(),
            new EvalCommand(),
            new TrainCommand(),
            new BenchCommand(),
            new ServeCommand(),
            new CompletionCommand(),
        };
        root.HelpName = "onnxgpt";

        // No command: the list of commands, and exit code 2 (nothing was done).
        root.SetAction(parse =>
        {
            root.Parse(["--help"]).Invoke(parse.InvocationConfiguration);
            return ExitCodes.Usage;
        });
        return root;
    }
}

namespace OnnxGpt.Cli;

public static class Program
{
    /// <summary>Every command, in the order <c>onnxgpt --help</c> lists them. Add a command here and in Commands/.</summary>
    internal static IReadOnlyList<ICommand> Commands { get; } =
    [
        new Commands.ExportCommand(),
        new Commands.InspectCommand(),
        new Commands.GenerateCommand(),
        new Commands.EvalCommand(),
        new Commands.TrainCommand(),
        new Commands.BenchCommand(),
        new Commands.ServeCommand(),
    ];

    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs the CLI with the given writers (tests call this directly).</summary>
    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Count == 0 || args[0] is "--help" or "-h" or "help")
        {
            PrintHelp(stdout);
            return args.Count == 0 ? 2 : 0;
        }

        if (args[0] is "--version")
        {
            stdout.WriteLine(typeof(Program).Assembly.GetName().Version?.ToString(3));
            return 0;
        }

        var command = Commands.FirstOrDefault(c => c.Name == args[0]);
        if (command is null)
        {
            stderr.WriteLine($"onnxgpt: unknown command '{args[0]}'. Commands: {string.Join(", ", Commands.Select(c => c.Name))}.");
            return 2;
        }

        var rest = args.Skip(1).ToList();
        if (rest.Contains("--help") || rest.Contains("-h"))
        {
            stdout.WriteLine(command.Usage);
            return 0;
        }

        try
        {
            return command.Run(new CliArgs(rest, command.Flags), stdout, stderr);
        }
        catch (CliUsageException e)
        {
            stderr.WriteLine($"onnxgpt {command.Name}: {e.Message}");
            stderr.WriteLine(command.Usage);
            return 2;
        }
        catch (OnnxGptException e)
        {
            stderr.WriteLine($"onnxgpt {command.Name}: {e.Message}");
            return 1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"onnxgpt {command.Name}: {e.Message}");
            return 1;
        }
    }

    private static void PrintHelp(TextWriter stdout)
    {
        stdout.WriteLine("onnxgpt: export GPT models to ONNX and run them.");
        stdout.WriteLine();
        stdout.WriteLine("Commands:");
        foreach (var c in Commands)
        {
            stdout.WriteLine($"  {c.Name,-10} {c.Summary}");
        }

        stdout.WriteLine();
        stdout.WriteLine("Run 'onnxgpt COMMAND --help' for a command's options.");
    }
}

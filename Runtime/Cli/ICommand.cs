namespace OnnxGpt.Cli;

/// <summary>One <c>onnxgpt</c> sub-command.</summary>
public interface ICommand
{
    string Name { get; }

    /// <summary>One line for the command list.</summary>
    string Summary { get; }

    /// <summary>The usage text shown by <c>onnxgpt NAME --help</c> and on usage errors.</summary>
    string Usage { get; }

    /// <summary>Options that take no value (without dashes).</summary>
    IReadOnlyCollection<string> Flags { get; }

    /// <summary>Runs the command; returns the process exit code.</summary>
    int Run(CliArgs args, TextWriter stdout, TextWriter stderr);
}

using System.CommandLine;

namespace OnnxGpt.Cli;

/// <summary>
/// One <c>onnxgpt</c> command. A command declares its options once, as fields made by
/// <see cref="Options.CliOption"/> (type, default, allowed values, description), adds them in its constructor
/// (<c>Options.Add(...)</c>; rules between options go in <c>Validators</c>), and reads them in <see cref="Run"/> with
/// <c>parse.GetValue(option)</c>. Help, typo suggestions, response files and completion come from System.CommandLine.
/// </summary>
/// <remarks>
/// To add an option: declare a field next to the command's other options, add it in the constructor, read it in
/// <see cref="Run"/>. A wrong value is reported by the option's parser before <see cref="Run"/> starts (exit code 2);
/// a rule that needs the model (a length against its context) throws <see cref="CliUsageException"/> (also 2).
/// </remarks>
internal abstract class CliCommand : Command
{
    /// <param name="name">The command's name on the command line.</param>
    /// <param name="description">What it does: one line in <c>onnxgpt --help</c>, the first in <c>onnxgpt NAME --help</c>.</param>
    protected CliCommand(string name, string description)
        : base(name, description)
    {
        SetAction(parse => Run(parse, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error));
    }

    /// <summary>Runs the command on a parse without errors; returns the exit code (see <see cref="ExitCodes"/>).</summary>
    protected abstract int Run(ParseResult parse, TextWriter stdout, TextWriter stderr);
}

namespace OnnxGpt.Cli;

/// <summary>
/// A usage error found while a command runs, where parsing alone could not tell (a prompt length against the model's
/// context): printed as one line naming the option, exit code <see cref="ExitCodes.Usage"/>.
/// </summary>
internal sealed class CliUsageException(string message) : Exception(message);

using OnnxGpt.Onnx;

namespace OnnxGpt.Cli.Commands;

/// <summary><c>onnxgpt inspect DIR|FILE</c>: what a person wants to know before opening Netron.</summary>
public sealed class InspectCommand : ICommand
{
    public string Name => "inspect";

    public string Summary => "show a model's inputs, outputs, operators, parameters and metadata";

    public string Usage => "usage: onnxgpt inspect DIR|FILE";

    public IReadOnlyCollection<string> Flags => [];

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        args.EnsureAllRead(maxPositional: 1);
        if (args.Positional.Count != 1)
        {
            throw new CliUsageException("give one model folder or .onnx file.");
        }

        stdout.Write(ModelInspector.Open(args.Positional[0]).Summary());
        return 0;
    }
}

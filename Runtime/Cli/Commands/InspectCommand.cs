using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using OnnxGpt.Exporter.Onnx;

namespace OnnxGpt.Cli.Commands;

/// <summary><c>onnxgpt inspect DIR|FILE [--load]</c>: what a person wants to know before opening Netron.</summary>
public sealed class InspectCommand : ICommand
{
    public string Name => "inspect";

    public string Summary => "show a model's inputs, outputs, operators, parameters and metadata";

    public string Usage => """
        usage: onnxgpt inspect DIR|FILE [--load]
          --load   also load the model into ONNX Runtime (CPU) and report the time and memory it took
        """;

    public IReadOnlyCollection<string> Flags => ["load"];

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        bool load = args.Flag("load");
        args.EnsureAllRead(maxPositional: 1);
        if (args.Positional.Count != 1)
        {
            throw new CliUsageException("give one model folder or .onnx file.");
        }

        var info = ModelInspector.Open(args.Positional[0]);
        stdout.Write(info.Summary());
        if (load)
        {
            var clock = Stopwatch.StartNew();
            try
            {
                using var options = new SessionOptions();
                using var session = new InferenceSession(info.Path, options);
                clock.Stop();
                using var self = Process.GetCurrentProcess();
                stdout.WriteLine();
                stdout.WriteLine($"loaded by ONNX Runtime {OrtEnv.Instance().GetVersionString()} (CPU) in {clock.Elapsed.TotalSeconds:F1} s; " +
                    $"peak working set {self.PeakWorkingSet64 / 1048576.0:F0} MiB");
            }
            catch (OnnxRuntimeException e)
            {
                throw new OnnxGptException($"ONNX Runtime cannot load '{info.Path}': {e.Message}", e);
            }
        }

        return 0;
    }
}

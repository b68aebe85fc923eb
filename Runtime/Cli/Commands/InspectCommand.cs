using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using OnnxGpt.Cli.Options;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Providers;

namespace OnnxGpt.Cli.Commands;

/// <summary><c>onnxgpt inspect DIR|FILE [--load]</c>: what a person wants to know before opening Netron.</summary>
internal sealed class InspectCommand : CliCommand
{
    private readonly Argument<string?> _path = new("DIR|FILE") { Description = "a model folder or .onnx file", Arity = ArgumentArity.ZeroOrOne };

    private readonly Option<bool> _load = CliOption.Flag("--load",
        "also load the model into ONNX Runtime (CPU) and report the time and memory it took");

    private readonly Option<bool> _ortWarnings = CliOption.Flag("--ort-warnings",
        "with --load, print ONNX Runtime's own warnings too (by default only its errors)");

    public InspectCommand()
        : base("inspect", "show a model's inputs, outputs, operators, parameters and metadata")
    {
        Arguments.Add(_path);
        Options.Add(_load);
        Options.Add(_ortWarnings);
        Validators.Add(r =>
        {
            if (r.GetResult(_path) is null)
            {
                r.AddError("give one model folder or .onnx file.");
            }
        });
    }

    protected override int Run(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        // A folder in any layout the runtime loads (OnnxGpt's, GenAI's, Optimum's, transformers.js', the Model Zoo's).
        string path = parse.GetValue(_path)!;
        var layout = ModelLayout.Find(path);
        var info = ModelInspector.Open(layout.ModelPath);
        if (Directory.Exists(path))
        {
            stdout.WriteLine($"layout: {layout}{(layout.Folder != Path.GetDirectoryName(layout.ModelPath) ? $" (description and tokenizer in {layout.Folder})" : "")}");
        }

        stdout.Write(info.Summary());
        if (parse.GetValue(_load))
        {
            var clock = Stopwatch.StartNew();
            try
            {
                using var options = new SessionOptions
                {
                    LogSeverityLevel = parse.GetValue(_ortWarnings) ? OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING : OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
                };
                SessionOptionsFactory.AddOnnxGptOperators(options);
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

        return ExitCodes.Success;
    }
}

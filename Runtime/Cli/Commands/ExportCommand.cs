using System.CommandLine;
using System.Diagnostics;
using OnnxGpt.Cli.Options;
using OnnxGpt.Cli.Progress;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Onnx;

namespace OnnxGpt.Cli.Commands;

/// <summary><c>onnxgpt export</c>: weights from a preset + seed, a config + seed, or a Hugging Face folder, to a model folder.</summary>
internal sealed class ExportCommand : CliCommand
{
    private readonly Option<string?> _preset = CliOption.OptionalChoice("--preset",
        $"a named shape with seeded GPT-2 initialisation: {string.Join(", ", GptPresets.Names)}", "none",
        [.. GptPresets.Names], helpName: "NAME");

    private readonly Option<string?> _config = CliOption.Text("--config", "FILE",
        "a Hugging Face GPT-2 style config.json, with seeded initialisation", "none");

    private readonly Option<long?> _seed = CliOption.OptionalLong("--seed", "N",
        "seed of the initialisation of --preset or --config; the same seed gives a byte-identical model", "1", min: 0);

    private readonly Option<string?> _hf = CliOption.Text("--hf", "DIR",
        "a Hugging Face GPT-2 folder: config.json + model.safetensors (or a sharded index), or a training run's folder", "none");

    private readonly Option<string> _out = CliOption.RequiredText("--out", "DIR",
        "the model folder to write (refused if it exists and is not empty, unless --force)");

    private readonly Option<string> _graph = CliOption.Choice("--graph",
        "portable: standard ONNX operators, any execution provider; fused: ONNX Runtime contrib operators, KV cache updated in place, faster on CPU",
        "portable", ["portable", "fused"]);

    private readonly Option<string> _dtype = CliOption.Choice("--dtype",
        "fp16: weights, activations and KV cache in float16 (for GPUs above all; ONNX Runtime also runs it on CPU); logits stay float32",
        "fp32", ["fp32", "fp16"]);

    private readonly Option<string?> _quantize = CliOption.OptionalChoice("--quantize",
        "weight-only block quantization of the projections and the head (needs --graph fused; MatMulNBits); embeddings stay float",
        "none", ["int4", "int8"]);

    private readonly Option<int> _blockSize = CliOption.Int("--block-size", "N",
        "values per quantization block: a power of two, at least 16", 32, min: 16,
        rule: n => (n & (n - 1)) == 0 ? null : "must be a power of two (16, 32, 64, ...)");

    private readonly Option<string> _externalData = CliOption.Choice("--external-data",
        "auto: weights over 2 GiB go to model.onnx.data; always: every weight does", "auto", ["auto", "always"]);

    private readonly Option<bool> _force = CliOption.Flag("--force", "replace the model in a folder that is not empty");

    public ExportCommand()
        : base("export", "export a GPT (preset, config or Hugging Face checkpoint) to an ONNX model folder")
    {
        Options.Add(_preset);
        Options.Add(_config);
        Options.Add(_seed);
        Options.Add(_hf);
        Options.Add(_out);
        Options.Add(_graph);
        Options.Add(_dtype);
        Options.Add(_quantize);
        Options.Add(_blockSize);
        Options.Add(_externalData);
        Options.Add(_force);
        Validators.Add(r =>
        {
            int sources = (r.Given(_preset) ? 1 : 0) + (r.Given(_config) ? 1 : 0) + (r.Given(_hf) ? 1 : 0);
            if (sources != 1)
            {
                r.AddError("give exactly one of --preset, --config, --hf.");
            }
            else if (r.Given(_hf) && r.Given(_seed))
            {
                r.AddError("--seed applies to --preset and --config; a checkpoint has its own weights.");
            }

            if (r.Given(_quantize) && r.ValueIfValid(_graph) != "fused")
            {
                r.AddError("--quantize needs --graph fused (MatMulNBits is an ONNX Runtime operator).");
            }

            if (r.Given(_quantize) && r.ValueIfValid(_dtype) == "fp16")
            {
                r.AddError("--dtype fp16 and --quantize exclude each other: quantized weights keep float32 activations; choose one.");
            }
        });
    }

    protected override int Run(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        string? preset = parse.GetValue(_preset), configPath = parse.GetValue(_config), hf = parse.GetValue(_hf);
        string output = parse.GetRequiredValue(_out);
        var graph = new GraphOptions
        {
            Flavor = parse.GetValue(_graph) == "fused" ? GraphFlavor.Fused : GraphFlavor.Portable,
            Quantization = parse.GetValue(_quantize) switch
            {
                "int4" => WeightQuantization.Int4,
                "int8" => WeightQuantization.Int8,
                _ => WeightQuantization.None,
            },
            BlockSize = parse.GetValue(_blockSize),
            Precision = parse.GetValue(_dtype) == "fp16" ? WeightPrecision.Float16 : WeightPrecision.Float32,
        };

        if (File.Exists(output))
        {
            throw new CliUsageException($"--out: '{output}' is a file; give a folder to write the model into.");
        }

        var clock = Stopwatch.StartNew();
        // Everything the export needs is checked before a weight is built or read (which takes seconds and gigabytes
        // for the large presets): a bad option fails at once.
        var config = hf is not null ? HfCheckpoint.ReadConfig(hf)
            : preset is not null ? GptPresets.Get(preset)
            : GptConfig.FromFile(configPath!);
        var options = new ExportOptions
        {
            ExternalData = parse.GetValue(_externalData) == "always" ? ExternalDataMode.Always : ExternalDataMode.Auto,
            Graph = graph,
            Force = parse.GetValue(_force),
            Tokenizer = TokenizerDetection.Detect(hf, config.VocabSize),
            TokenizerSourceFolder = hf,
            InputFolder = hf,
        }.Validate(output, config);

        GptWeights weights;
        string source;
        if (hf is not null)
        {
            stderr.WriteLine($"loading {hf}");
            weights = HfCheckpoint.Load(hf);
            source = $"Hugging Face checkpoint {Path.GetFileName(Path.GetFullPath(hf).TrimEnd(Path.DirectorySeparatorChar))}";
        }
        else
        {
            ulong seed = (ulong)(parse.GetValue(_seed) ?? 1);
            stderr.WriteLine($"initialising {config.ParameterCount:N0} parameters (seed {seed})");
            weights = SeededInit.Create(config, seed);
            source = $"{(preset is not null ? $"preset {preset}" : "config " + Path.GetFileName(configPath))}, GPT-2 initialisation with seed {seed}";
        }

        options = options with { Source = source };
        ExportResult result;
        using (var progress = new ExportProgress(stderr, "export"))
        {
            result = GptExporter.Export(weights, output, options, progress);
        }

        stdout.WriteLine($"wrote {result.ModelPath} ({result.ModelBytes / 1048576.0:F1} MiB)" +
            (result.ExternalDataPath is null ? "" : $" and {result.ExternalDataPath} ({result.ExternalDataBytes / 1048576.0:F1} MiB)") +
            $" in {clock.Elapsed.TotalSeconds:F1} s");
        return ExitCodes.Success;
    }
}

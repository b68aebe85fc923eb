using System.Diagnostics;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter;

namespace OnnxGpt.Cli.Commands;

/// <summary><c>onnxgpt export</c>: weights from a preset + seed, a config + seed, or a Hugging Face folder, to a model folder.</summary>
public sealed class ExportCommand : ICommand
{
    public string Name => "export";

    public string Summary => "export a GPT (preset, config or Hugging Face checkpoint) to an ONNX model folder";

    public string Usage => """
        usage: onnxgpt export (--preset NAME [--seed N] | --config FILE.json [--seed N] | --hf DIR) --out DIR
                              [--graph portable|fused] [--dtype fp32|fp16] [--quantize int4|int8] [--block-size 32]
                              [--external-data auto|always] [--force]
          --preset NAME      a named shape with seeded GPT-2 initialisation: PRESETS
          --config FILE      a Hugging Face GPT-2 style config.json, seeded initialisation
          --seed N           seed of the initialisation (default 1); the same seed gives a byte-identical model
          --hf DIR           a Hugging Face GPT-2 folder: config.json + model.safetensors (or a sharded index)
          --out DIR          the model folder to write (refused if it exists and is not empty, unless --force)
          --graph            portable: standard ONNX operators, any execution provider (default);
                             fused: ONNX Runtime contrib operators, KV cache updated in place, faster on CPU
          --dtype            fp32 (default) or fp16: weights, activations and KV cache in float16 (for GPUs above
                             all; ONNX Runtime also runs it on CPU); logits stay float32
          --quantize         weight-only block quantization of the projections and the head (fused graph):
                             int8 or int4 (MatMulNBits); embeddings stay float
          --block-size N     values per quantization block (default 32)
          --external-data    auto: weights over 2 GiB go to model.onnx.data; always: every weight does
        """.Replace("PRESETS", string.Join(", ", GptPresets.Names), StringComparison.Ordinal);

    public IReadOnlyCollection<string> Flags => ["force"];

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        string? preset = args.Option("preset"), configPath = args.Option("config"), hf = args.Option("hf");
        long? seed = args.Long("seed");
        string output = args.Required("out");
        var external = args.Choice("external-data", "auto", "always") == "always" ? ExternalDataMode.Always : ExternalDataMode.Auto;
        bool force = args.Flag("force");
        var graph = new GraphOptions
        {
            Flavor = args.Choice("graph", "portable", "fused") == "fused" ? GraphFlavor.Fused : GraphFlavor.Portable,
            Quantization = args.Choice("quantize", "int4", "int8") switch
            {
                "int4" => WeightQuantization.Int4,
                "int8" => WeightQuantization.Int8,
                _ => WeightQuantization.None,
            },
            BlockSize = args.Int("block-size") ?? 32,
            Precision = args.Choice("dtype", "fp32", "fp16") == "fp16" ? WeightPrecision.Float16 : WeightPrecision.Float32,
        };
        args.EnsureAllRead();
        if (graph.Quantization != WeightQuantization.None && graph.Flavor != GraphFlavor.Fused)
        {
            throw new CliUsageException("--quantize needs --graph fused (MatMulNBits is an ONNX Runtime operator).");
        }

        int sources = (preset is null ? 0 : 1) + (configPath is null ? 0 : 1) + (hf is null ? 0 : 1);
        if (sources != 1)
        {
            throw new CliUsageException("give exactly one of --preset, --config, --hf.");
        }

        if (hf is not null && seed is not null)
        {
            throw new CliUsageException("--seed applies to --preset and --config; a checkpoint has its own weights.");
        }

        if (seed is < 0)
        {
            throw new CliUsageException($"--seed must be 0 or more, not {seed}.");
        }

        var clock = Stopwatch.StartNew();
        // Everything the export needs is checked before a weight is built or read: a bad option fails at once.
        var config = hf is not null ? HfCheckpoint.ReadConfig(hf)
            : preset is not null ? GptPresets.Get(preset)
            : GptConfig.FromFile(configPath!);
        var options = new ExportOptions
        {
            ExternalData = external,
            Graph = graph,
            Force = force,
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
            ulong s = (ulong)(seed ?? 1);
            stderr.WriteLine($"initialising {config.ParameterCount:N0} parameters (seed {s})");
            weights = SeededInit.Create(config, s);
            source = $"{(preset is not null ? $"preset {preset}" : "config " + Path.GetFileName(configPath))}, GPT-2 initialisation with seed {s}";
        }

        options = options with { Source = source };
        var progress = new Progress(stderr);
        var result = GptExporter.Export(weights, output, options, progress);
        progress.Done();
        stdout.WriteLine($"wrote {result.ModelPath} ({result.ModelBytes / 1048576.0:F1} MiB)" +
            (result.ExternalDataPath is null ? "" : $" and {result.ExternalDataPath} ({result.ExternalDataBytes / 1048576.0:F1} MiB)") +
            $" in {clock.Elapsed.TotalSeconds:F1} s");
        return 0;
    }

    /// <summary>
    /// One status line on stderr, rewritten in place on a terminal; redirected to a file or pipe, only the steps
    /// after the weights (one line each), so logs do not fill with carriage returns.
    /// </summary>
    private sealed class Progress(TextWriter stderr) : IProgress<string>
    {
        private readonly bool _interactive = ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected;
        private int _width;

        public void Report(string value)
        {
            if (!_interactive)
            {
                if (!value.StartsWith("weights ", StringComparison.Ordinal))
                {
                    stderr.WriteLine(value);
                }

                return;
            }

            var line = value.Length > 100 ? value[..100] : value;
            stderr.Write("\r" + line.PadRight(_width));
            _width = line.Length;
        }

        public void Done()
        {
            if (_interactive)
            {
                stderr.WriteLine();
            }
        }
    }
}

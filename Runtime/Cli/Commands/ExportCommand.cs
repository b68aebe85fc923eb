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

    private readonly Option<string?> _hf = WithAlias(CliOption.Text("--checkpoint", "PATH",
        "a checkpoint, detected by what is there: a Hugging Face GPT-2 or Llama folder (config.json + model.safetensors or a " +
        "sharded index), a training run's folder, or a llama2.c .bin file (--hf DIR is the same)", "none"), "--hf");

    private readonly Option<string?> _tokenizer = CliOption.Text("--tokenizer", "FILE",
        "a tokenizer file for a checkpoint that carries none: a SentencePiece .model (tok512.model), llama2.c's tok*.bin, " +
        "or a tokenizer.json; copied beside the model, its begin/end ids recorded", "the checkpoint folder's own, if any");

    private readonly Option<string> _out = CliOption.RequiredText("--out", "DIR",
        "the model folder to write (refused if it exists and is not empty, unless --force)");

    private readonly Option<string> _graph = CliOption.Choice("--graph",
        "portable: standard ONNX operators, any execution provider; fused: ONNX Runtime contrib operators, KV cache updated in place, faster on CPU",
        "portable", ["portable", "fused"]);

    private readonly Option<string> _dtype = CliOption.Choice("--dtype",
        "fp16: weights, activations and KV cache in float16 (for GPUs above all; ONNX Runtime also runs it on CPU); logits stay float32",
        "fp32", ["fp32", "fp16"]);

    private readonly Option<string> _kvCache = CliOption.Choice("--kv-cache",
        "fp16: the KV cache in float16 for a float32 or quantized fused graph (half the bytes attention reads per token at long context; " +
        "OnnxGpt's own attention operator, so only OnnxGpt's runtime loads the model); needs --graph fused",
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
        Options.Add(_tokenizer);
        Options.Add(_out);
        Options.Add(_graph);
        Options.Add(_dtype);
        Options.Add(_quantize);
        Options.Add(_kvCache);
        Options.Add(_blockSize);
        Options.Add(_externalData);
        Options.Add(_force);
        Validators.Add(r =>
        {
            int sources = (r.Given(_preset) ? 1 : 0) + (r.Given(_config) ? 1 : 0) + (r.Given(_hf) ? 1 : 0);
            if (sources != 1)
            {
                r.AddError("give exactly one of --preset, --config, --checkpoint (--hf).");
            }
            else if (r.Given(_hf) && r.Given(_seed))
            {
                r.AddError("--seed applies to --preset and --config; a checkpoint has its own weights.");
            }

            if (r.Given(_tokenizer) && r.ValueIfValid(_tokenizer) is { } file && TokenizerSpec.ForFile(file) is null)
            {
                r.AddError($"--tokenizer: '{file}' is not a tokenizer file this tool reads; expected a SentencePiece .model, llama2.c's .bin or a tokenizer.json.");
            }

            if (r.Given(_quantize) && r.ValueIfValid(_graph) != "fused")
            {
                r.AddError("--quantize needs --graph fused (MatMulNBits is an ONNX Runtime operator).");
            }

            if (r.ValueIfValid(_kvCache) == "fp16" && (r.ValueIfValid(_graph) != "fused" || r.ValueIfValid(_dtype) == "fp16"))
            {
                r.AddError("--kv-cache fp16 needs --graph fused with float32 activations (with --dtype fp16 the cache is float16 already).");
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
            Float16Cache = parse.GetValue(_kvCache) == "fp16",
        };

        if (File.Exists(output))
        {
            throw new CliUsageException($"--out: '{output}' is a file; give a folder to write the model into.");
        }

        var clock = Stopwatch.StartNew();
        // Everything the export needs is checked before a weight is built or read (which takes seconds and gigabytes
        // for the large presets): a bad option fails at once.
        var config = hf is not null ? CheckpointLoader.ReadConfig(hf)
            : preset is not null ? GptPresets.Get(preset)
            : GptConfig.FromFile(configPath!);
        string? checkpointFolder = hf is null ? null : CheckpointLoader.Folder(hf);
        string? tokenizerFile = parse.GetValue(_tokenizer);
        var tokenizerSpec = tokenizerFile is not null ? TokenizerSpec.ForFile(tokenizerFile)
            : TokenizerDetection.Detect(hf is not null && CheckpointLoader.Detect(hf) == CheckpointLoader.Kind.Llama2c ? null : hf, config.VocabSize);
        string? tokenizerFolder = tokenizerFile is not null ? Path.GetDirectoryName(Path.GetFullPath(tokenizerFile)) : checkpointFolder;
        config = WithTokenIds(config, tokenizerSpec, tokenizerFolder, stderr);
        var options = new ExportOptions
        {
            ExternalData = parse.GetValue(_externalData) == "always" ? ExternalDataMode.Always : ExternalDataMode.Auto,
            Graph = graph,
            Force = parse.GetValue(_force),
            Tokenizer = tokenizerSpec,
            TokenizerSourceFolder = tokenizerFolder,
            InputFolder = checkpointFolder,
        }.Validate(output, config);

        GptWeights weights;
        string source;
        if (hf is not null)
        {
            stderr.WriteLine($"loading {hf}");
            weights = CheckpointLoader.Load(hf);
            weights = weights.WithConfig(weights.Config with { BosTokenId = config.BosTokenId, EosTokenId = config.EosTokenId });
            source = CheckpointLoader.Detect(hf) == CheckpointLoader.Kind.Llama2c
                ? $"llama2.c checkpoint {Path.GetFileName(hf)}"
                : $"Hugging Face checkpoint {Path.GetFileName(Path.GetFullPath(hf).TrimEnd(Path.DirectorySeparatorChar))}";
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

    /// <summary>
    /// The begin/end ids a tokenizer file names, for a checkpoint whose config has none (llama2.c's .bin keeps them in
    /// its tokenizer); a config that names them keeps its own. Without a tokenizer the model runs on token ids only.
    /// </summary>
    private static GptConfig WithTokenIds(GptConfig config, TokenizerSpec? spec, string? folder, TextWriter stderr)
    {
        if (spec is null)
        {
            if (config.Family == ModelFamily.Llama)
            {
                stderr.WriteLine("no tokenizer: the model will run on token ids only (give --tokenizer FILE for text)");
            }

            return config;
        }

        if (config.BosTokenId is not null || spec.Kind is not (TokenizerSpec.SentencePieceKind or TokenizerSpec.Llama2cKind))
        {
            return config;
        }

        var tokenizer = OnnxGpt.Runtime.Tokenization.TokenizerFactory.Create(spec, folder);
        if (tokenizer.VocabularySize != config.VocabSize)
        {
            throw new OnnxGptException(
                $"--tokenizer: {spec.Files![0]} has {tokenizer.VocabularySize} tokens, but the checkpoint's vocabulary has {config.VocabSize}; it is not this model's tokenizer.");
        }

        return config with { BosTokenId = tokenizer.BosTokenId, EosTokenId = tokenizer.EosTokenId };
    }

    private static Option<string?> WithAlias(Option<string?> option, string alias)
    {
        option.Aliases.Add(alias);
        return option;
    }
}

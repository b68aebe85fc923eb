using System.Diagnostics;
using Google.Protobuf;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter.Onnx.Proto;

namespace OnnxGpt.Exporter;

/// <summary>
/// Writes a model folder: <c>model.onnx</c> (+ <c>model.onnx.data</c>), <c>config.json</c>, <c>genai_config.json</c>,
/// tokenizer files.
/// </summary>
public static class GptExporter
{
    /// <summary>Weights above this many bytes go to external data in <see cref="ExternalDataMode.Auto"/>: protobuf caps a file at 2 GiB.</summary>
    public const long InlineLimitBytes = (2L << 30) - (64L << 20);

    /// <summary>Alignment of each tensor in the external data file, so ONNX Runtime can map it.</summary>
    public const int ExternalAlignment = 4096;

    /// <summary>
    /// Files copied beside the tokenizer's own when its source folder has them: ONNX Runtime GenAI's tokenizer
    /// reads <c>tokenizer_config.json</c> beside <c>tokenizer.json</c>.
    /// </summary>
    private static readonly string[] TokenizerCompanionFiles = ["tokenizer_config.json"];

    /// <summary>
    /// Writes <paramref name="weights"/> as a model folder: <c>model.onnx</c> (plus external data when large),
    /// <c>config.json</c>, <c>genai_config.json</c> and the tokenizer files; <paramref name="progress"/> hears one line
    /// per weight. The options are checked first (<see cref="ExportOptions.Validate"/>). Every file is written into a
    /// staging folder inside the output folder and moved into place only once all of them are complete, so a failed or
    /// interrupted export leaves the folder as it was (a new output folder is removed again), never a half-written
    /// model that looks valid.
    /// </summary>
    public static ExportResult Export(GptWeights weights, string folder, ExportOptions? options = null, IProgress<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        options ??= new ExportOptions();
        options.Validate(folder, weights.Config);
        var clock = Stopwatch.StartNew();
        bool created = CreateFolder(folder);
        string staging = Path.Combine(folder, StagingPrefix + Guid.NewGuid().ToString("N"));
        bool done = false;
        try
        {
            Directory.CreateDirectory(staging);
            var (external, modelBytes, dataBytes) = WriteStaged(weights, staging, options, progress);
            progress?.Report($"writing {Path.Combine(folder, ModelFolder.ModelFile)}");
            Commit(staging, folder, external);
            done = true;
            string modelPath = Path.Combine(folder, ModelFolder.ModelFile);
            string dataPath = Path.Combine(folder, ModelFolder.ExternalDataFile);
            return new ExportResult(folder, modelPath, external ? dataPath : null, modelBytes, dataBytes, clock.Elapsed);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OnnxGptException($"cannot write the model folder '{folder}': {e.Message}", e);
        }
        finally
        {
            TryDelete(staging);
            if (!done && created && !Directory.EnumerateFileSystemEntries(folder).Any())
            {
                TryDelete(folder);
            }
        }
    }

    /// <summary>The name prefix of the staging folder an export writes into before moving its files into place.</summary>
    public const string StagingPrefix = ".onnxgpt-export-";

    /// <summary>Writes every output file into <paramref name="staging"/>.</summary>
    private static (bool External, long ModelBytes, long DataBytes) WriteStaged(GptWeights weights, string staging, ExportOptions options, IProgress<string>? progress)
    {
        long weightBytes = weights.Names.Sum(n => weights[n].Length * sizeof(float));
        bool external = options.ExternalData == ExternalDataMode.Always || weightBytes > InlineLimitBytes;
        string modelPath = Path.Combine(staging, ModelFolder.ModelFile);
        string dataPath = Path.Combine(staging, ModelFolder.ExternalDataFile);
        ExternalDataWriter? data = external ? new ExternalDataWriter(dataPath) : null;
        GraphProto graph;
        using (data)
        {
            // Progress counts checkpoint tensors: a quantized one is written as several initializers
            // (`.q4` + `.scales`), and a tied table as the float table and its quantized copy.
            var names = weights.Names.ToHashSet(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            graph = GptGraph.Build(weights, options.Graph, weight =>
            {
                string source = weight.Name;
                while (!names.Contains(source) && source.LastIndexOf('.') is var dot and > 0)
                {
                    source = source[..dot];
                }

                seen.Add(source);
                progress?.Report($"weights {seen.Count}/{names.Count}: {weight.Name} {weight.ShapeText}");
                return data is null ? TensorProtos.Inline(weight) : data.Append(weight);
            });
        }

        graph.DocString = DocString(weights.Config, options);
        var model = new ModelProto
        {
            IrVersion = GptGraph.IrVersionFor(weights.Config, options.Graph),
            ProducerName = "OnnxGpt",
            ProducerVersion = ProducerVersion,
            Graph = graph,
            DocString = "A GPT language model exported by OnnxGpt.",
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = GptGraph.OpsetFor(weights.Config, options.Graph) });
        if (options.Graph.Flavor == GraphFlavor.Fused)
        {
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = GptGraph.MicrosoftDomain, Version = 1 });
        }

        if (options.Graph.Float16Cache)
        {
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = OnnxGptOperators.Domain, Version = OnnxGptOperators.DomainVersion });
        }

        foreach (var (key, value) in Metadata(weights.Config, options))
        {
            model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        }

        using (var stream = new FileStream(modelPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
        {
            model.WriteTo(stream);
        }

        File.WriteAllText(Path.Combine(staging, ModelFolder.ConfigFile), weights.Config.ToJson() + "\n");
        if (!options.Graph.Float16Cache)
        {
            // ONNX Runtime GenAI cannot run OnnxGpt's own attention operator, so that export gets no GenAI config.
            File.WriteAllText(Path.Combine(staging, ModelFolder.GenAiConfigFile), GenAiConfig.ToJson(weights.Config, options) + "\n");
        }
        CopyTokenizerFiles(staging, options);
        return (external, new FileInfo(modelPath).Length, external ? new FileInfo(dataPath).Length : 0);
    }

    /// <summary>
    /// Moves the staged files into the folder, the model file last (so a folder is never left with a new model and
    /// old companions), and removes a stale external data file an earlier export left.
    /// </summary>
    private static void Commit(string staging, string folder, bool external)
    {
        var files = Directory.EnumerateFiles(staging, "*", SearchOption.AllDirectories)
            .OrderBy(f => Path.GetFileName(f) == ModelFolder.ModelFile ? 1 : 0)
            .ThenBy(f => f, StringComparer.Ordinal)
            .ToList();
        foreach (var file in files)
        {
            string target = Path.Combine(folder, Path.GetRelativePath(staging, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Move(file, target, overwrite: true);
        }

        string staleData = Path.Combine(folder, ModelFolder.ExternalDataFile);
        if (!external && File.Exists(staleData))
        {
            File.Delete(staleData);   // from an earlier export into this folder
        }
    }

    private static bool CreateFolder(string folder)
    {
        if (Directory.Exists(folder))
        {
            return false;
        }

        try
        {
            Directory.CreateDirectory(folder);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            throw new OnnxGptException($"cannot create output folder '{folder}': {e.Message}", e);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: a staging folder left behind is named as such and ignored by every reader.
        }
    }

    /// <summary>The metadata that makes the model self-describing, in a fixed order.</summary>
    public static IEnumerable<(string Key, string Value)> Metadata(GptConfig config, ExportOptions options)
    {
        yield return (MetadataKeys.FormatVersion, "1");
        yield return (MetadataKeys.IoConvention, options.Graph.IoConvention);
        yield return (MetadataKeys.GraphFlavor, options.Graph.Flavor == GraphFlavor.Fused ? "fused" : "portable");
        yield return (MetadataKeys.Precision, options.Graph.Precision == WeightPrecision.Float16 ? "fp16" : "fp32");
        if (options.Graph.Quantization != WeightQuantization.None)
        {
            yield return (MetadataKeys.Quantization, $"{options.Graph.Quantization.ToString().ToLowerInvariant()}, block {options.Graph.BlockSize}");
        }
        yield return (MetadataKeys.Config, config.ToJson(indented: false));
        if (options.Tokenizer is { } tokenizer)
        {
            yield return (MetadataKeys.Tokenizer, tokenizer.ToJson());
        }

        yield return (MetadataKeys.Generation, options.Generation.ToJson());
        if (options.ChatTemplate is { } chat)
        {
            chat.Validate("ExportOptions.ChatTemplate");
            yield return (MetadataKeys.ChatTemplate, chat.ToJson());
        }

        if (config.BosTokenId is { } bos)
        {
            yield return (MetadataKeys.BosTokenId, bos.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        if (config.EosTokenId is { } eos)
        {
            yield return (MetadataKeys.EosTokenId, eos.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    private static string ProducerVersion =>
        typeof(GptExporter).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    private static string DocString(GptConfig c, ExportOptions options) => c.Family == ModelFamily.Llama ? LlamaDocString(c, options) :
        $"GPT language model: {c.Layers} layers, {c.Heads} heads, width {c.Width}, feed-forward {c.FeedForwardWidth} " +
        $"({c.Activation.ToConfigName()}), vocabulary {c.VocabSize}, context {c.ContextLength}, {c.ParameterCount:N0} parameters" +
        (options.Source is null ? "" : $"; weights: {options.Source}") +
        ". Inputs follow the Hugging Face Optimum convention: input_ids, attention_mask (1 = attend, 0 = padding; " +
        "left padding works), position_ids, past_key_values.{i}.key|value (batch, heads, past, head_size); outputs logits " +
        "and present.{i}.key|value = past followed by the new tokens' keys and values.";

    private static string LlamaDocString(GptConfig c, ExportOptions options) =>
        $"Llama-family language model: {c.Layers} layers, {c.Heads} heads ({c.KvHeads} key/value heads), width {c.Width}, SwiGLU feed-forward " +
        $"{c.FeedForwardWidth}, RMSNorm, rotary positions (θ {c.RopeTheta}, {(c.RotaryInterleaved ? "interleaved pairs" : "rotate-half pairs")}), " +
        $"vocabulary {c.VocabSize}, context {c.ContextLength}, {c.ParameterCount:N0} parameters" +
        (options.Source is null ? "" : $"; weights: {options.Source}") +
        ". Inputs follow the Hugging Face Optimum convention: input_ids, attention_mask (1 = attend, 0 = padding), " +
        (GptGraph.TakesPositionIds(c, options.Graph) ? "position_ids, " : "") +
        "past_key_values.{i}.key|value (batch, key/value heads, past, head_size); outputs logits and present.{i}.key|value.";

    /// <summary>Copies the tokenizer's files (each resolved inside its source folder) and their companions into <paramref name="staging"/>.</summary>
    private static void CopyTokenizerFiles(string staging, ExportOptions options)
    {
        if (options.Tokenizer?.Files is not { Count: > 0 } files)
        {
            return;
        }

        var source = options.TokenizerSourceFolder
            ?? throw new OnnxGptException("the tokenizer names files but ExportOptions.TokenizerSourceFolder does not say where they are.");
        foreach (var (file, i) in files.Select((f, i) => (f, i)))
        {
            string namedBy = $"the tokenizer description ('files'[{i}])";
            CopyFile(FolderPaths.ResolveInside(source, file, namedBy), FolderPaths.ResolveInside(staging, file, namedBy));
        }

        // Not needed by our hosts, but ONNX Runtime GenAI's tokenizer will not open a folder without them.
        foreach (var file in TokenizerCompanionFiles)
        {
            var from = Path.Combine(source, file);
            if (InputFile.Exists(from))
            {
                CopyFile(from, Path.Combine(staging, file));
            }
        }
    }

    /// <summary>Copies a regular file (never a FIFO or device) through <see cref="InputFile"/>.</summary>
    private static void CopyFile(string from, string to)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(to)!);
        using var input = InputFile.OpenRead(from, "tokenizer file");
        using var output = new FileStream(to, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        input.CopyTo(output);
    }

    /// <summary>Streams tensors into the external data file, each aligned, and hands back the initializer pointing at it.</summary>
    private sealed class ExternalDataWriter(string path) : IDisposable
    {
        private readonly FileStream _stream = new(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);

        public TensorProto Append(WeightData weight)
        {
            long pad = (ExternalAlignment - _stream.Position % ExternalAlignment) % ExternalAlignment;
            if (pad > 0)
            {
                _stream.Write(new byte[pad]);
            }

            long offset = _stream.Position;
            _stream.Write(weight.Bytes);
            return TensorProtos.External(weight, ModelFolder.ExternalDataFile, offset);
        }

        public void Dispose() => _stream.Dispose();
    }
}

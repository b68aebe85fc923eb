using System.Text.Json;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Model;

/// <summary>
/// Where a model folder keeps its parts, found from the files it holds (no hand-written config): the graph to run, a
/// second graph for the first step where the convention splits the decoder in two, and the folder holding the
/// description and tokenizer files. <see cref="GptModel.Load(string, Providers.SessionSettings?, Microsoft.Extensions.Logging.ILogger?)"/>
/// finds a path's layout through <see cref="Find"/>; the graph itself then confirms the convention (<see cref="ModelSignature"/>).
/// <para>A folder is tried, in order, as:</para>
/// <list type="number">
/// <item>ONNX Runtime GenAI's: <c>genai_config.json</c> naming <c>model.decoder.filename</c> (OnnxGpt's own exports
/// write one too, naming <c>model.onnx</c>).</item>
/// <item>Hugging Face Optimum's: <c>model.onnx</c>, <c>decoder_model_merged.onnx</c>, or the pair
/// <c>decoder_model.onnx</c> (run on the first step, without past) + <c>decoder_with_past_model.onnx</c> (every later
/// step); each name also with a suffix, tried in the order of <see cref="FileSuffixes"/> (full precision first).</item>
/// <item>transformers.js': the same names in an <c>onnx/</c> subfolder, where the suffix is the dtype
/// (<c>model_quantized.onnx</c> is its <c>q8</c>); <c>config.json</c>'s <c>transformers.js_config.dtype</c>, when
/// it names one, is tried first.</item>
/// <item>A folder holding exactly one <c>.onnx</c> file (the ONNX Model Zoo's <c>gpt2-lm-head-10.onnx</c>).</item>
/// </list>
/// Anything else is refused with a message listing what the folder holds and the layouts supported.
/// </summary>
public sealed record ModelLayout
{
    /// <summary>Optimum's single decoder (with past inputs that may be empty), and transformers.js v3's decoder-only name.</summary>
    public const string SingleFile = "model";

    /// <summary>Optimum's merged decoder: both branches in one graph, chosen by <c>use_cache_branch</c>.</summary>
    public const string MergedFile = "decoder_model_merged";

    /// <summary>Optimum's first-step decoder: no past inputs, present outputs.</summary>
    public const string DecoderFile = "decoder_model";

    /// <summary>Optimum's decoder for every step after the first.</summary>
    public const string DecoderWithPastFile = "decoder_with_past_model";

    /// <summary>The encoder of Optimum's sequence-to-sequence exports, which this runtime does not run.</summary>
    public const string EncoderFile = "encoder_model";

    /// <summary>transformers.js' subfolder for the graphs.</summary>
    public const string TransformersJsFolder = "onnx";

    /// <summary>
    /// File-name suffixes tried after the base name, in order: none (full precision), then Optimum's quantizer and
    /// optimizer outputs, then transformers.js' dtypes (<c>q8</c> is <c>_quantized</c>).
    /// </summary>
    public static IReadOnlyList<string> FileSuffixes { get; } = ["", "_quantized", "_optimized", "_fp16", "_int8", "_uint8", "_q4", "_q4f16", "_bnb4"];

    /// <summary>transformers.js' dtypes and the file suffix each selects (its DEFAULT_DTYPE_SUFFIX_MAPPING).</summary>
    private static readonly Dictionary<string, string> DtypeSuffixes = new(StringComparer.Ordinal)
    {
        ["fp32"] = "", ["fp16"] = "_fp16", ["int8"] = "_int8", ["uint8"] = "_uint8", ["q8"] = "_quantized",
        ["q4"] = "_q4", ["q4f16"] = "_q4f16", ["bnb4"] = "_bnb4",
    };

    /// <summary>The convention, as the files show it (the loaded model may refine it: <see cref="GptModel.Layout"/>).</summary>
    public required ModelLayoutKind Kind { get; init; }

    /// <summary>The graph run at every step (for Optimum's pair: <c>decoder_with_past_model.onnx</c>), as a full path.</summary>
    public required string ModelPath { get; init; }

    /// <summary>Optimum's <c>decoder_model.onnx</c> of a pair, run on a step with nothing cached; null otherwise.</summary>
    public string? FirstStepPath { get; init; }

    /// <summary>The folder whose <c>config.json</c>, <c>generation_config.json</c> and tokenizer files describe the model.</summary>
    public required string Folder { get; init; }

    /// <summary>The <c>genai_config.json</c> the folder carries, if any.</summary>
    public string? GenAiConfigPath { get; init; }

    /// <summary>The layouts a folder may follow, for messages.</summary>
    public const string Supported =
        "OnnxGpt's export (model.onnx with its metadata); ONNX Runtime GenAI's (genai_config.json naming model.decoder.filename); " +
        "Hugging Face Optimum's (model.onnx, decoder_model_merged.onnx, or decoder_model.onnx + decoder_with_past_model.onnx, " +
        "also with a suffix such as _quantized, with config.json beside them); transformers.js' (the same names in an onnx/ " +
        "subfolder, suffixed by dtype: model_quantized.onnx, model_fp16.onnx, decoder_model_merged_quantized.onnx, ..., with " +
        "config.json above it); the ONNX Model Zoo's GPT-2 (a folder holding one .onnx file, or the file itself)";

    /// <summary>One line: the convention and its files.</summary>
    public override string ToString()
    {
        string files = FirstStepPath is null
            ? Path.GetFileName(ModelPath)
            : $"{Path.GetFileName(FirstStepPath)} (first step) + {Path.GetFileName(ModelPath)}";
        return $"{Kind}: {files}";
    }

    /// <summary>
    /// Finds the parts of the model at <paramref name="path"/>, a folder or a <c>.onnx</c> file, from the files alone
    /// (nothing is loaded; <see cref="GptModel.Load(string, Providers.SessionSettings?, Microsoft.Extensions.Logging.ILogger?)"/> then checks the graph).
    /// </summary>
    /// <exception cref="OnnxGptException">Nothing is there, the folder follows no supported layout (the message lists what
    /// it holds and the layouts supported), or a file it names is missing or escapes it.</exception>
    public static ModelLayout Find(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path))
        {
            return ResolveFolder(Path.GetFullPath(path));
        }

        if (!InputFile.Exists(path))
        {
            throw new OnnxGptException($"model file '{path}' does not exist; give a .onnx file or a model folder ({Supported}).");
        }

        return ResolveFile(Path.GetFullPath(path));
    }

    private static ModelLayout ResolveFolder(string folder)
    {
        string genai = Path.Combine(folder, ModelFolder.GenAiConfigFile);
        string? genaiConfig = InputFile.Exists(genai) ? genai : null;
        if (genaiConfig is not null && GenAiDescription.Read(genai).ModelFile is { } named)
        {
            if (!InputFile.Exists(named))
            {
                throw new OnnxGptException(
                    $"{genai}: model.decoder.filename names '{Path.GetFileName(named)}', which is not in '{folder}'; expected the decoder's .onnx file there.");
            }

            return new ModelLayout { Kind = ModelLayoutKind.GenAi, ModelPath = named, Folder = folder, GenAiConfigPath = genaiConfig };
        }

        RefuseEncoderDecoder(folder);
        if (FindDecoder(folder, FileSuffixes) is { } optimum)
        {
            return optimum with { Kind = ModelLayoutKind.Optimum, Folder = folder, GenAiConfigPath = genaiConfig };
        }

        string onnx = Path.Combine(folder, TransformersJsFolder);
        if (Directory.Exists(onnx))
        {
            RefuseEncoderDecoder(onnx);
        }

        if (Directory.Exists(onnx) && FindDecoder(onnx, PreferredSuffixes(folder)) is { } js)
        {
            return js with { Kind = ModelLayoutKind.TransformersJs, Folder = folder, GenAiConfigPath = genaiConfig };
        }

        var lone = Directory.EnumerateFiles(folder, "*.onnx").Where(InputFile.Exists).Take(2).ToList();
        if (lone.Count == 1)
        {
            return new ModelLayout { Kind = ModelLayoutKind.File, ModelPath = lone[0], Folder = folder, GenAiConfigPath = genaiConfig };
        }

        throw new OnnxGptException(
            $"model folder '{folder}' holds no model in a layout this runtime recognises; it holds {Listing(folder)}. Supported: {Supported}.");
    }

    private static ModelLayout ResolveFile(string file)
    {
        string dir = Path.GetDirectoryName(file)!;
        string name = Path.GetFileName(file);
        // Pointed at one half of Optimum's pair: the other half comes with it.
        string? first = null, model = file;
        foreach (var suffix in FileSuffixes)
        {
            if (name == DecoderWithPastFile + suffix + ".onnx")
            {
                first = Path.Combine(dir, DecoderFile + suffix + ".onnx");
                if (!InputFile.Exists(first))
                {
                    throw MissingFirstStep(file, first);
                }
            }
            else if (name == DecoderFile + suffix + ".onnx" && InputFile.Exists(Path.Combine(dir, DecoderWithPastFile + suffix + ".onnx")))
            {
                (first, model) = (file, Path.Combine(dir, DecoderWithPastFile + suffix + ".onnx"));
            }
        }

        string genai = Path.Combine(dir, ModelFolder.GenAiConfigFile);
        string? genaiConfig = InputFile.Exists(genai) ? genai : null;
        var kind = genaiConfig is not null && GenAiDescription.Read(genai).ModelFile == file ? ModelLayoutKind.GenAi
            : IsConventionName(name) ? ModelLayoutKind.Optimum
            : ModelLayoutKind.File;
        string folder = dir;
        if (Path.GetFileName(dir) == TransformersJsFolder && Path.GetDirectoryName(dir) is { } parent
            && InputFile.Exists(Path.Combine(parent, ModelFolder.ConfigFile)))
        {
            (kind, folder) = (ModelLayoutKind.TransformersJs, parent);
        }

        return new ModelLayout { Kind = kind, ModelPath = model, FirstStepPath = first, Folder = folder, GenAiConfigPath = genaiConfig };
    }

    /// <summary>
    /// Optimum's and transformers.js' sequence-to-sequence exports (T5, BART, Whisper, ...) keep an
    /// <c>encoder_model.onnx</c> beside a <c>decoder_model.onnx</c> that takes the encoder's hidden states: refused by name.
    /// </summary>
    private static void RefuseEncoderDecoder(string dir)
    {
        foreach (var suffix in FileSuffixes)
        {
            string encoder = Path.Combine(dir, EncoderFile + suffix + ".onnx");
            if (InputFile.Exists(encoder))
            {
                throw new OnnxGptException(
                    $"'{dir}' holds '{Path.GetFileName(encoder)}': an encoder-decoder export (its decoder takes the encoder's hidden states). " +
                    $"This runtime runs decoder-only language models. Supported: {Supported}.");
            }
        }
    }

    /// <summary>The first decoder in <paramref name="dir"/> by suffix, then base name: single, merged, pair.</summary>
    private static ModelLayout? FindDecoder(string dir, IEnumerable<string> suffixes)
    {
        foreach (var suffix in suffixes)
        {
            foreach (var single in new[] { SingleFile, MergedFile })
            {
                string file = Path.Combine(dir, single + suffix + ".onnx");
                if (InputFile.Exists(file))
                {
                    return new ModelLayout { Kind = ModelLayoutKind.Optimum, ModelPath = file, Folder = dir };
                }
            }

            string withPast = Path.Combine(dir, DecoderWithPastFile + suffix + ".onnx");
            string decoder = Path.Combine(dir, DecoderFile + suffix + ".onnx");
            if (InputFile.Exists(withPast))
            {
                return InputFile.Exists(decoder)
                    ? new ModelLayout { Kind = ModelLayoutKind.Optimum, ModelPath = withPast, FirstStepPath = decoder, Folder = dir }
                    : throw MissingFirstStep(withPast, decoder);
            }

            if (InputFile.Exists(decoder))
            {
                return new ModelLayout { Kind = ModelLayoutKind.Optimum, ModelPath = decoder, Folder = dir };
            }
        }

        return null;
    }

    /// <summary>The suffixes in order, the one <c>config.json</c>'s <c>transformers.js_config.dtype</c> names first.</summary>
    private static IEnumerable<string> PreferredSuffixes(string folder)
    {
        string config = Path.Combine(folder, ModelFolder.ConfigFile);
        string? preferred = null;
        if (InputFile.Exists(config))
        {
            using var document = JsonInput.ReadFile(config, "config file", GptConfig.MaxConfigFileBytes);
            var root = JsonInput.Root(document, config);
            if (root.Kind == JsonValueKind.Object && root.Get("transformers.js_config") is { Kind: JsonValueKind.Object } js
                && js.Get("dtype") is { } dtype)
            {
                // A string for every graph, or an object keyed by file name.
                var value = dtype.Kind == JsonValueKind.Object ? dtype.Get(SingleFile) ?? dtype.Get(MergedFile) : dtype;
                if (value is { Kind: JsonValueKind.String } s && DtypeSuffixes.TryGetValue(s.GetString(), out var suffix))
                {
                    preferred = suffix;
                }
            }
        }

        return preferred is null ? FileSuffixes : FileSuffixes.Where(s => s != preferred).Prepend(preferred);
    }

    private static bool IsConventionName(string name) =>
        FileSuffixes.Any(s => new[] { SingleFile, MergedFile, DecoderFile, DecoderWithPastFile }.Any(b => name == b + s + ".onnx"));

    private static OnnxGptException MissingFirstStep(string withPast, string decoder) => new(
        $"'{withPast}' is Optimum's decoder for the steps after the first, and needs '{Path.GetFileName(decoder)}' beside it for the " +
        "first step (no past keys and values); it is missing. Export both, or a merged decoder (decoder_model_merged.onnx).");

    /// <summary>What a folder holds, for a message: up to 12 names, folders marked with '/'.</summary>
    private static string Listing(string folder)
    {
        var entries = Directory.EnumerateFileSystemEntries(folder)
            .Select(e => Path.GetFileName(e) + (Directory.Exists(e) ? "/" : ""))
            .Order(StringComparer.Ordinal)
            .ToList();
        if (entries.Count == 0)
        {
            return "nothing";
        }

        string shown = string.Join(", ", entries.Take(12));
        return entries.Count > 12 ? $"{shown} (and {entries.Count - 12} more)" : shown;
    }
}

using System.Text.Json;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Model;

/// <summary>
/// Where a loaded model's description comes from: our own <c>metadata_props</c> first; for a model exported
/// elsewhere, a Hugging Face <c>config.json</c> or an ONNX Runtime GenAI <c>genai_config.json</c> beside it.
/// </summary>
internal static class ModelDescription
{
    public const string ConfigJson = "config.json";
    public const string GenAiConfigJson = "genai_config.json";

    /// <summary>The config, where it came from (for messages), and generation defaults found alongside it.</summary>
    public static (GptConfig Config, string Source, GenerationDefaults? Defaults) ReadConfig(
        IReadOnlyDictionary<string, string> metadata, string modelPath)
    {
        if (metadata.TryGetValue(MetadataKeys.Config, out var json))
        {
            string source = $"{modelPath} (metadata '{MetadataKeys.Config}')";
            return (GptConfig.FromJson(json, source), source, null);
        }

        string folder = Path.GetDirectoryName(Path.GetFullPath(modelPath)) ?? ".";
        string hf = Path.Combine(folder, ConfigJson);
        if (InputFile.Exists(hf))
        {
            return (GptConfig.FromFile(hf), hf, null);
        }

        string genai = Path.Combine(folder, GenAiConfigJson);
        if (InputFile.Exists(genai))
        {
            using var document = ReadGenAi(genai);
            var (config, defaults) = FromGenAi(JsonInput.Root(document, genai));
            return (config, genai, defaults);
        }

        throw new OnnxGptException(
            $"{modelPath}: the model carries no '{MetadataKeys.Config}' metadata and there is no {ConfigJson} or {GenAiConfigJson} " +
            $"beside it in '{folder}'. The runtime needs at least the context length (n_positions) and vocabulary size: " +
            $"export the model with OnnxGpt, or put the Hugging Face {ConfigJson} of the checkpoint beside the model.");
    }

    /// <summary>
    /// The model file named in <c>genai_config.json</c> (<c>model.decoder.filename</c>), if any, as a full path that
    /// <see cref="FolderPaths.ResolveInside"/> has checked stays inside <paramref name="folder"/>.
    /// </summary>
    /// <exception cref="OnnxGptException">The config is not valid JSON, or the file name escapes the folder.</exception>
    public static string? GenAiModelFile(string folder)
    {
        string path = Path.Combine(folder, GenAiConfigJson);
        if (!InputFile.Exists(path))
        {
            return null;
        }

        using var document = ReadGenAi(path);
        var root = JsonInput.Root(document, path);
        if (root.Kind != JsonValueKind.Object || root.Get("model")?.Get("decoder")?.Get("filename") is not { } filename)
        {
            return null;
        }

        return FolderPaths.ResolveInside(folder, filename.GetString(), $"{path}: {filename.Path}");
    }

    /// <summary>The shape a <c>genai_config.json</c> file describes.</summary>
    public static GptConfig ReadGenAiConfig(string path)
    {
        using var document = ReadGenAi(path);
        return FromGenAi(JsonInput.Root(document, path)).Config;
    }

    /// <summary>Reads the fields of an ONNX Runtime GenAI config that describe a GPT decoder.</summary>
    internal static (GptConfig Config, GenerationDefaults? Defaults) FromGenAi(string json, string source)
    {
        using var document = JsonInput.Parse(json, source);
        return FromGenAi(JsonInput.Root(document, source));
    }

    private static (GptConfig Config, GenerationDefaults? Defaults) FromGenAi(JsonField root)
    {
        string source = root.Source;
        if (root.Kind != JsonValueKind.Object)
        {
            throw root.Error("a JSON object at the top level");
        }

        var model = root.Require("model");
        var decoder = model.Require("decoder");
        int heads = Int(decoder.Require("num_attention_heads"));
        int? headSize = decoder.Get("head_size") is { } hs ? Int(hs) : null;
        int width = decoder.Get("hidden_size") is { } w ? Int(w)
            : headSize is { } size ? (int)Math.Min((long)size * heads, int.MaxValue) : throw Missing("model.decoder.hidden_size", source);
        var config = new GptConfig
        {
            VocabSize = Int(model.Require("vocab_size")),
            ContextLength = Int(model.Require("context_length")),
            Width = width,
            Layers = Int(decoder.Require("num_hidden_layers")),
            Heads = heads,
            BosTokenId = model.Get("bos_token_id") is { } bos ? Int(bos) : null,
            EosTokenId = model.Get("eos_token_id") is { } eos ? Int(eos) : null,
        }.Validate(source);

        GenerationDefaults? defaults = null;
        if (root.Get("search") is { Kind: JsonValueKind.Object } search)
        {
            var d = new GenerationDefaults();
            defaults = (d with
            {
                DoSample = search.Get("do_sample")?.GetBoolean() ?? d.DoSample,
                Temperature = search.Get("temperature")?.GetDouble() ?? d.Temperature,
                TopK = search.Get("top_k") is { } k ? Int(k) : d.TopK,
                TopP = search.Get("top_p")?.GetDouble() ?? d.TopP,
                RepetitionPenalty = search.Get("repetition_penalty")?.GetDouble() ?? d.RepetitionPenalty,
            }).Validate($"{source} ('search')");
        }

        return (config, defaults);
    }

    /// <summary>The largest genai_config.json read.</summary>
    private const long MaxGenAiConfigBytes = 16L << 20;

    private static JsonDocument ReadGenAi(string path) => JsonInput.ReadFile(path, "ONNX Runtime GenAI config", MaxGenAiConfigBytes);

    private static OnnxGptException Missing(string field, string source) => new($"{source}: required field '{field}' is missing.");

    /// <summary>An integer field; an array (GenAI allows several eos ids) gives its first element.</summary>
    private static int Int(JsonField field) =>
        field.Kind == JsonValueKind.Array && field.Count > 0 ? field.Items().First().GetInt32() : field.GetInt32();
}

using System.Text.Json.Nodes;
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
        if (File.Exists(hf))
        {
            return (GptConfig.FromJson(ReadText(hf), hf), hf, null);
        }

        string genai = Path.Combine(folder, GenAiConfigJson);
        if (File.Exists(genai))
        {
            var (config, defaults) = FromGenAi(ReadText(genai), genai);
            return (config, genai, defaults);
        }

        throw new OnnxGptException(
            $"{modelPath}: the model carries no '{MetadataKeys.Config}' metadata and there is no {ConfigJson} or {GenAiConfigJson} " +
            $"beside it in '{folder}'. The runtime needs at least the context length (n_positions) and vocabulary size: " +
            $"export the model with OnnxGpt, or put the Hugging Face {ConfigJson} of the checkpoint beside the model.");
    }

    /// <summary>The model file named in <c>genai_config.json</c> (<c>model.decoder.filename</c>), if any.</summary>
    public static string? GenAiModelFile(string folder)
    {
        string path = Path.Combine(folder, GenAiConfigJson);
        if (!File.Exists(path))
        {
            return null;
        }

        return Parse(ReadText(path), path)["model"]?["decoder"]?["filename"] is JsonValue v && v.TryGetValue<string>(out var name) ? name : null;
    }

    /// <summary>Reads the fields of an ONNX Runtime GenAI config that describe a GPT decoder.</summary>
    internal static (GptConfig Config, GenerationDefaults? Defaults) FromGenAi(string json, string source)
    {
        var root = Parse(json, source);
        var model = root["model"] as JsonObject ?? throw new OnnxGptException($"{source}: the 'model' object is missing.");
        var decoder = model["decoder"] as JsonObject ?? throw new OnnxGptException($"{source}: the 'model.decoder' object is missing.");
        int heads = Int(decoder, "num_attention_heads", source) ?? throw Missing("model.decoder.num_attention_heads", source);
        int? headSize = Int(decoder, "head_size", source);
        int width = Int(decoder, "hidden_size", source) ?? (headSize is { } size ? size * heads : throw Missing("model.decoder.hidden_size", source));
        var config = new GptConfig
        {
            VocabSize = Int(model, "vocab_size", source) ?? throw Missing("model.vocab_size", source),
            ContextLength = Int(model, "context_length", source) ?? throw Missing("model.context_length", source),
            Width = width,
            Layers = Int(decoder, "num_hidden_layers", source) ?? throw Missing("model.decoder.num_hidden_layers", source),
            Heads = heads,
            BosTokenId = Int(model, "bos_token_id", source),
            EosTokenId = Int(model, "eos_token_id", source),
        }.Validate(source);

        GenerationDefaults? defaults = null;
        if (root["search"] is JsonObject search)
        {
            var d = new GenerationDefaults();
            defaults = d with
            {
                DoSample = search["do_sample"] is JsonValue ds && ds.TryGetValue<bool>(out var sample) ? sample : d.DoSample,
                Temperature = Double(search, "temperature", source) ?? d.Temperature,
                TopK = Int(search, "top_k", source) ?? d.TopK,
                TopP = Double(search, "top_p", source) ?? d.TopP,
                RepetitionPenalty = Double(search, "repetition_penalty", source) ?? d.RepetitionPenalty,
            };
        }

        return (config, defaults);
    }

    private static OnnxGptException Missing(string field, string source) => new($"{source}: required field '{field}' is missing.");

    private static JsonObject Parse(string json, string source)
    {
        try
        {
            return JsonNode.Parse(json) as JsonObject ?? throw new OnnxGptException($"{source}: expected a JSON object at the top level.");
        }
        catch (JsonException e)
        {
            throw new OnnxGptException($"{source}: not valid JSON ({e.Message}).", e);
        }
    }

    private static string ReadText(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OnnxGptException($"cannot read '{path}': {e.Message}", e);
        }
    }

    /// <summary>An integer field; an array (GenAI allows several eos ids) gives its first element.</summary>
    private static int? Int(JsonObject obj, string field, string source)
    {
        var node = obj[field];
        if (node is JsonArray { Count: > 0 } array)
        {
            node = array[0];
        }

        if (node is null)
        {
            return null;
        }

        if (node is JsonValue v && v.TryGetValue<double>(out var x) && x == Math.Floor(x) && Math.Abs(x) <= int.MaxValue)
        {
            return (int)x;
        }

        throw new OnnxGptException($"{source}: field '{field}' must be an integer, found {node.ToJsonString()}.");
    }

    private static double? Double(JsonObject obj, string field, string source)
    {
        var node = obj[field];
        if (node is null)
        {
            return null;
        }

        return node is JsonValue v && v.TryGetValue<double>(out var x)
            ? x
            : throw new OnnxGptException($"{source}: field '{field}' must be a number, found {node.ToJsonString()}.");
    }

}

using System.Text.Json;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Model;

/// <summary>
/// An ONNX Runtime GenAI <c>genai_config.json</c>, read as GenAI reads it: every field of <c>model.decoder</c> is
/// optional (GenAI's own <c>gpt2</c> test folders give <c>num_key_value_heads</c>, <c>head_size</c> and
/// <c>num_hidden_layers</c>, but neither <c>num_attention_heads</c> nor <c>hidden_size</c>, and sometimes no
/// <c>context_length</c>), and the graph's input and output names are the ones <c>model.decoder.inputs</c> and
/// <c>outputs</c> declare, GenAI's defaults for those it leaves out: <c>input_ids</c>, <c>attention_mask</c>,
/// <c>position_ids</c>, <c>past_key_names</c> <c>past_key_values.%d.key</c>, <c>past_value_names</c>
/// <c>past_key_values.%d.value</c>, or one stacked <c>past_names</c> (e.g. <c>past_%d</c>); <c>logits</c>,
/// <c>present_key_names</c>, <c>present_value_names</c>, <c>present_names</c>. Fields GenAI reads that do not bear on
/// running the decoder (session and provider options, LoRA, pipelines) are left alone.
/// </summary>
internal sealed class GenAiDescription
{
    /// <summary>The largest genai_config.json read.</summary>
    public const long MaxFileBytes = 16L << 20;

    /// <summary>The <c>model</c> sections of GenAI's configs for graphs other than a text decoder's.</summary>
    private static readonly string[] OtherModelParts = ["encoder", "vision", "speech", "embedding"];

    private GenAiDescription(string path, string? type, string? modelFile, StatedShape shape, GraphIoNames names,
        GenerationDefaults? defaults, int? maxLength)
    {
        Path = path;
        Type = type;
        ModelFile = modelFile;
        Shape = shape;
        Names = names;
        Defaults = defaults;
        MaxLength = maxLength;
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary><c>model.type</c> (GenAI's class for the graph: <c>gpt2</c>, <c>llama</c>, <c>decoder</c>, ...), if given.</summary>
    public string? Type { get; }

    /// <summary>The decoder file <c>model.decoder.filename</c> names, checked to stay inside the folder; null when not named.</summary>
    public string? ModelFile { get; }

    /// <summary>What the file states about the shape, under its own field names.</summary>
    public StatedShape Shape { get; }

    /// <summary>The graph's I/O names, as declared (GenAI's defaults where not).</summary>
    public GraphIoNames Names { get; }

    /// <summary>Generation defaults from <c>search</c>, if it has any.</summary>
    public GenerationDefaults? Defaults { get; }

    /// <summary><c>search.max_length</c>, if given: GenAI's longest sequence, a bound on the context when nothing else states it.</summary>
    public int? MaxLength { get; }

    /// <summary>Reads <paramref name="path"/> (through <see cref="JsonInput"/>: duplicate keys refused).</summary>
    /// <exception cref="OnnxGptException">The file is not valid JSON, a field has the wrong type, or the decoder file escapes the folder.</exception>
    public static GenAiDescription Read(string path)
    {
        using var document = JsonInput.ReadFile(path, "ONNX Runtime GenAI config", MaxFileBytes);
        return FromJson(JsonInput.Root(document, path), System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
    }

    /// <summary>Reads the JSON text of a GenAI config; <paramref name="source"/> names it, <paramref name="folder"/> is where its files are.</summary>
    public static GenAiDescription Parse(string json, string source, string folder)
    {
        using var document = JsonInput.Parse(json, source);
        return FromJson(JsonInput.Root(document, source), folder);
    }

    private static GenAiDescription FromJson(JsonField root, string folder)
    {
        if (root.Kind != JsonValueKind.Object)
        {
            throw root.Error("a JSON object at the top level");
        }

        var model = Object(root.Require("model"));
        var decoder = model.Get("decoder") is { } d ? Object(d) : (JsonField?)null;
        string? type = model.Get("type")?.GetString();
        foreach (var part in OtherModelParts)
        {
            if (model.Get(part) is { } other)
            {
                throw new OnnxGptException(
                    $"{root.Source}: {other.Path} describes a {part} graph beside the decoder (model.type '{type ?? "not given"}'): GenAI's " +
                    "encoder-decoder and multimodal folders (whisper, phi3v, phi4mm, ...) feed their decoder embeddings, not token ids. " +
                    "This runtime runs decoder-only text models; run this folder with ONNX Runtime GenAI.");
            }
        }

        var shape = new StatedShape(root.Source) { LlamaLike = type == "llama" };
        shape.Says(StatedShape.Field.VocabSize, Int(model, "vocab_size"), "model.vocab_size")
            .Says(StatedShape.Field.ContextLength, Int(model, "context_length"), "model.context_length")
            .Says(StatedShape.Field.BosTokenId, Int(model, "bos_token_id"), "model.bos_token_id")
            .SaysEnds(model.Get("eos_token_id"), "model.eos_token_id");

        var names = GraphIoNames.Default;
        string? modelFile = null;
        if (decoder is { } dec)
        {
            shape.Says(StatedShape.Field.Width, Int(dec, "hidden_size"), "model.decoder.hidden_size")
                .Says(StatedShape.Field.Layers, Int(dec, "num_hidden_layers"), "model.decoder.num_hidden_layers")
                .Says(StatedShape.Field.Heads, Int(dec, "num_attention_heads"), "model.decoder.num_attention_heads")
                .Says(StatedShape.Field.KvHeads, Int(dec, "num_key_value_heads"), "model.decoder.num_key_value_heads")
                .Says(StatedShape.Field.HeadSize, Int(dec, "head_size"), "model.decoder.head_size");
            if (dec.Get("filename") is { } filename)
            {
                modelFile = FolderPaths.ResolveInside(folder, filename.GetString(), $"{root.Source}: {filename.Path}");
            }

            names = ReadNames(dec);
        }

        GenerationDefaults? defaults = null;
        int? maxLength = null;
        if (root.Get("search") is { } search)
        {
            Object(search);
            maxLength = Int(search, "max_length");
            var g = new GenerationDefaults();
            defaults = (g with
            {
                DoSample = search.Get("do_sample")?.GetBoolean() ?? g.DoSample,
                Temperature = search.Get("temperature")?.GetDouble() ?? g.Temperature,
                TopK = Int(search, "top_k") ?? g.TopK,
                TopP = search.Get("top_p")?.GetDouble() ?? g.TopP,
                RepetitionPenalty = search.Get("repetition_penalty")?.GetDouble() ?? g.RepetitionPenalty,
            }).Validate($"{root.Source} ('search')");
        }

        return new GenAiDescription(root.Source, type, modelFile, shape, names, defaults, maxLength);
    }

    private static GraphIoNames ReadNames(JsonField decoder)
    {
        var names = GraphIoNames.Default with { Declared = true };
        if (decoder.Get("inputs") is { } inputs)
        {
            Object(inputs);
            names = names with
            {
                InputIds = Name(inputs, "input_ids", names.InputIds),
                AttentionMask = Name(inputs, "attention_mask", names.AttentionMask),
                PositionIds = Name(inputs, "position_ids", names.PositionIds),
                PastKey = Pattern(inputs, "past_key_names", names.PastKey),
                PastValue = Pattern(inputs, "past_value_names", names.PastValue),
            };
            if (inputs.Get("past_names") is { } past)
            {
                names = names with { Past = Pattern(past), DeclaresStackedCache = true };
            }
        }

        bool stackedPresent = false;
        if (decoder.Get("outputs") is { } outputs)
        {
            Object(outputs);
            names = names with
            {
                Logits = Name(outputs, "logits", names.Logits),
                PresentKey = Pattern(outputs, "present_key_names", names.PresentKey),
                PresentValue = Pattern(outputs, "present_value_names", names.PresentValue),
            };
            if (outputs.Get("present_names") is { } present)
            {
                names = names with { Present = Pattern(present) };
                stackedPresent = true;
            }
        }

        if (names.DeclaresStackedCache != stackedPresent)
        {
            throw new OnnxGptException(
                $"{decoder.Source}: {decoder.Path}.{(stackedPresent ? "outputs.present_names" : "inputs.past_names")} is given but " +
                $"{decoder.Path}.{(stackedPresent ? "inputs.past_names" : "outputs.present_names")} is not; a stacked cache needs both " +
                "(e.g. \"past_%d\" and \"present_%d\").");
        }

        return names;
    }

    private static JsonField Object(JsonField field) =>
        field.Kind == JsonValueKind.Object ? field : throw field.Error("a JSON object");

    private static int? Int(JsonField parent, string name) =>
        parent.Get(name) is { Kind: not JsonValueKind.Null } value ? StatedShape.FirstInt(value) : null;

    private static string Name(JsonField parent, string name, string fallback) =>
        parent.Get(name) is { } value ? NonEmpty(value) : fallback;

    private static string Pattern(JsonField parent, string name, string fallback) =>
        parent.Get(name) is { } value ? Pattern(value) : fallback;

    /// <summary>A layer-indexed name: exactly one <c>%d</c>, which GenAI replaces with the layer.</summary>
    private static string Pattern(JsonField value)
    {
        string pattern = NonEmpty(value);
        int at = pattern.IndexOf("%d", StringComparison.Ordinal);
        if (at < 0 || pattern.IndexOf("%d", at + 2, StringComparison.Ordinal) >= 0)
        {
            throw new OnnxGptException(
                $"{value.Source}: {value.Path} is \"{pattern}\"; expected a name pattern with one %d for the layer, e.g. \"past_%d\".");
        }

        return pattern;
    }

    private static string NonEmpty(JsonField value)
    {
        string text = value.GetString();
        return text.Length > 0 && !text.Contains('\0')
            ? text
            : throw new OnnxGptException($"{value.Source}: {value.Path} is empty (or holds a NUL); expected a graph input or output name.");
    }
}

using OnnxGpt.Contracts;
using Field = OnnxGpt.Runtime.Model.StatedShape.Field;

namespace OnnxGpt.Runtime.Model;

/// <summary>
/// Where a loaded model's description comes from. Our own <c>metadata_props</c> first; for a model exported
/// elsewhere, the files its folder's convention carries, each read for what it states: a Hugging Face
/// <c>config.json</c> (field by field: complete or not, of any model type), an ONNX Runtime GenAI <c>genai_config.json</c> (whose
/// <c>model.decoder</c> fields are all optional), <c>generation_config.json</c>'s begin and end ids, and the graph's own
/// declared dimensions (layers, key/value heads, head size, vocabulary). A value missing from one part is taken from
/// the next (in a GenAI folder its <c>genai_config.json</c> comes first); a graph whose shape matches a preset (the ONNX
/// Model Zoo's GPT-2, which carries no config) takes the preset. Every part that states a value must agree with the
/// one in use: <see cref="ModelConsistency"/> checks that with the <see cref="Description.Parts"/> returned here.
/// </summary>
internal static class ModelDescription
{
    public const string ConfigJson = "config.json";
    public const string GenAiConfigJson = "genai_config.json";

    /// <summary>The graph's name as a part.</summary>
    private const string GraphSource = "the graph";

    /// <summary>The model's description.</summary>
    /// <param name="Config">The config in use.</param>
    /// <param name="Source">Where it came from, for messages.</param>
    /// <param name="Defaults">Generation defaults found with it (a GenAI config's <c>search</c>, a <c>generation_config.json</c>), or null.</param>
    /// <param name="Chosen">For each of the config's values, the sentence of the part that gave it.</param>
    /// <param name="Parts">Every part that states something about the shape (files, the graph), to check against <paramref name="Config"/>.</param>
    /// <param name="EndTokenIds">Every end id the files list (an <c>eos_token_id</c> list), in order; empty when they give one at most.</param>
    public sealed record Description(GptConfig Config, string Source, GenerationDefaults? Defaults, StatedShape Chosen, IReadOnlyList<StatedShape> Parts,
        IReadOnlyList<int> EndTokenIds);

    /// <summary>Reads the description of the model at <paramref name="layout"/>, whose graph has <paramref name="signature"/>.</summary>
    /// <exception cref="OnnxGptException">A file is malformed, or no part states what the runtime needs; the message says what was looked for.</exception>
    public static Description Read(IReadOnlyDictionary<string, string> metadata, ModelLayout layout, ModelSignature signature, GenAiDescription? genai)
    {
        string modelPath = layout.ModelPath;
        var graph = FromGraph(signature);
        var parts = new List<StatedShape>();
        string hfPath = Path.Combine(layout.Folder, ConfigJson);
        StatedShape? hf = InputFile.Exists(hfPath) ? ReadHfFields(hfPath) : null;

        if (metadata.TryGetValue(MetadataKeys.Config, out var json))
        {
            string source = $"{modelPath} (metadata '{MetadataKeys.Config}')";
            var config = GptConfig.FromJson(json, source);
            AddIf(parts, hf);
            AddIf(parts, genai?.Shape);
            parts.Add(graph);
            return new Description(config, source, null, StatedShape.FromConfig(config, source, isFile: false), parts, []);
        }

        // Another tool's graph computes everything itself: its files only describe the shape, field by field (a
        // config.json is not refused for a model type or rotary scaling this project's exporter does not build).
        var defaults = genai?.Defaults;
        StatedShape? generationIds = null;
        string generationPath = Path.Combine(layout.Folder, HfGenerationConfig.FileName);
        if (InputFile.Exists(generationPath))
        {
            (var generation, generationIds) = HfGenerationConfig.Read(generationPath);
            defaults ??= generation;
        }

        var ordered = layout.Kind == ModelLayoutKind.GenAi ? new[] { genai?.Shape, hf } : [hf, genai?.Shape];
        foreach (var part in ordered)
        {
            AddIf(parts, part);
        }

        parts.Add(graph);
        var filled = new List<StatedShape>(parts);
        AddIf(filled, generationIds);
        if (Value(filled, Field.ContextLength) is null && Preset(graph) is { } preset)
        {
            var presetShape = StatedShape.FromConfig(preset.Config, preset.Source, isFile: false);
            filled.Add(presetShape);
            parts.Add(presetShape);
        }

        return Fill(modelPath, layout, filled, parts, defaults, genai);
    }

    /// <summary>Builds the config from the first part stating each value, in order.</summary>
    private static Description Fill(string modelPath, ModelLayout layout, List<StatedShape> filled, List<StatedShape> parts,
        GenerationDefaults? defaults, GenAiDescription? genai)
    {
        var graph = parts.First(p => p.Source == GraphSource);
        var chosen = new StatedShape("the parts", isFile: false);
        int? Take(Field field)
        {
            foreach (var part in filled)
            {
                if (part[field] is { } v)
                {
                    chosen.Has(field, v, part.Statement(field));
                    return v;
                }
            }

            return null;
        }

        int? vocab = Take(Field.VocabSize), context = Take(Field.ContextLength), layers = Take(Field.Layers);
        int? width = Take(Field.Width), heads = Take(Field.Heads), kvHeads = Take(Field.KvHeads), headSize = Take(Field.HeadSize);
        int? bos = Take(Field.BosTokenId), eos = Take(Field.EosTokenId);
        if (context is null && genai?.MaxLength is { } maxLength)
        {
            context = maxLength;   // GenAI's longest sequence: a safe bound when nothing states the context
            chosen.Has(Field.ContextLength, maxLength, $"{genai.Path} says search.max_length is {maxLength}");
        }

        // GenAI's gpt2 configs give the cache's heads and head size only: without grouped-query attention (which a
        // stated width or query head count would show) the query heads are the cache's.
        string derived = $"{(filled.FirstOrDefault(p => p.IsFile && !p.IsEmpty) ?? filled[0]).Source} leaves it to be derived";
        if (heads is null)
        {
            heads = width is { } w && headSize is { } d && d > 0 ? w / d : kvHeads;
            chosen.Has(Field.Heads, heads, $"{derived}: {heads} query heads (width / head size, or the cache's heads)");
        }

        if (width is null && heads is { } h && headSize is { } hd)
        {
            width = (int)Math.Min((long)h * hd, int.MaxValue);
            chosen.Has(Field.Width, width, $"{derived}: width {width} (heads × head size)");
        }

        var missing = new List<string>();
        if (vocab is null) missing.Add("vocabulary size (vocab_size)");
        if (context is null) missing.Add("context length (n_positions)");
        if (layers is null) missing.Add("layer count (n_layer)");
        if (width is null || heads is null) missing.Add("width and heads (n_embd, n_head)");
        if (missing.Count > 0)
        {
            var files = parts.Where(p => p.IsFile).Select(p => $"'{Path.GetFileName(p.Source)}'").ToList();
            string looked = files.Count == 0
                ? $"there is no {ConfigJson} or {GenAiConfigJson} beside it in '{layout.Folder}'"
                : $"{string.Join(" and ", files)} in '{layout.Folder}' do{(files.Count == 1 ? "es" : "")} not state it";
            throw new OnnxGptException(
                $"{modelPath}: nothing states the model's {string.Join(", ", missing)}. The model carries no '{MetadataKeys.Config}' metadata, " +
                $"{looked}, and the graph's shape ({Describe(graph)}) matches no preset. The runtime needs at least the context length " +
                $"(n_positions) and vocabulary size: export the model with OnnxGpt, or put the Hugging Face {ConfigJson} of the checkpoint " +
                "beside the model.");
        }

        string source = filled.FirstOrDefault(p => p.IsFile && !p.IsEmpty)?.Source ?? filled.First(p => !p.IsFile && p[Field.ContextLength] is not null).Source;
        // The family only names what the graph is (for its parameter count); grouped-query attention is the Llama family's.
        int? groups = kvHeads is { } kv && kv != heads ? kv : null;
        bool llama = groups is not null || filled.Any(p => p.LlamaLike);
        int? inner = filled.Select(p => p.InnerWidth).FirstOrDefault(i => i is not null);
        var config = new GptConfig
        {
            VocabSize = vocab!.Value,
            ContextLength = context!.Value,
            Width = width!.Value,
            Layers = layers!.Value,
            Heads = heads!.Value,
            KeyValueHeads = groups,
            BosTokenId = bos,
            EosTokenId = eos,
            // A Llama config must state its feed-forward width; GenAI's states none. The graph computes it itself, so an
            // unstated one is taken as 4 × width, which only the parameter count reads.
            InnerWidth = llama ? inner ?? 4 * width.Value : inner,
        };
        if (llama)
        {
            config = config with
            {
                Family = ModelFamily.Llama, Norm = NormKind.RmsNorm, Positions = PositionEncoding.Rotary, Mlp = MlpKind.Gated,
                Activation = Activation.Silu, Bias = false,
            };
        }

        config = config.Validate(source);
        var ends = new List<int>();
        foreach (var part in filled)
        {
            foreach (int id in part.EndIds)
            {
                if (id < 0 || id >= config.VocabSize)
                {
                    throw new OnnxGptException(
                        $"{part.Source}: eos_token_id lists {id}, outside the vocabulary of {config.VocabSize} tokens ({chosen.Statement(Field.VocabSize)}); " +
                        "expected token ids of this model.");
                }

                if (!ends.Contains(id))
                {
                    ends.Add(id);
                }
            }
        }

        return new Description(config, source, defaults, chosen, parts, ends);
    }

    /// <summary>What the graph states: its cache's layers, heads and head size, and its logits' vocabulary.</summary>
    private static StatedShape FromGraph(ModelSignature s)
    {
        var graph = new StatedShape(GraphSource, isFile: false);
        string where = s.HasCache ? "past inputs" : "present outputs";
        graph.Has(Field.Layers, s.HasCache ? s.Layers : s.PresentLayers, $"the graph has {(s.HasCache ? s.Layers : s.PresentLayers)} layers of {where}")
            .Has(Field.KvHeads, s.Heads, $"the graph has {s.Heads} heads in its {where}")
            .Has(Field.HeadSize, s.HeadSize, $"the graph has head size {s.HeadSize} in its {where}")
            .Has(Field.VocabSize, s.VocabSize, $"the graph has {s.VocabSize} logits per token");
        return graph;
    }

    /// <summary>The one preset whose shape the graph declares (GPT-2 124M for the ONNX Model Zoo's gpt2-lm-head-10).</summary>
    private static (GptConfig Config, string Source)? Preset(StatedShape graph)
    {
        if (graph[Field.Layers] is not { } layers || graph[Field.KvHeads] is not { } heads || graph[Field.HeadSize] is not { } d || graph[Field.VocabSize] is not { } vocab)
        {
            return null;
        }

        var matches = GptPresets.Names.Select(n => (Name: n, Config: GptPresets.Get(n)))
            .Where(p => p.Config.Layers == layers && p.Config.KvHeads == heads && p.Config.HeadSize == d && p.Config.VocabSize == vocab)
            .ToList();
        return matches.Count == 1
            ? (matches[0].Config, $"the preset '{matches[0].Name}' (the graph's {Describe(graph)} are its shape)")
            : null;
    }

    private static string Describe(StatedShape graph) =>
        $"{Show(graph[Field.Layers])} layers, {Show(graph[Field.KvHeads])} heads of size {Show(graph[Field.HeadSize])}, {Show(graph[Field.VocabSize])} logits";

    private static string Show(int? value) => value?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?";

    private static int? Value(List<StatedShape> parts, Field field) => parts.Select(p => p[field]).FirstOrDefault(v => v is not null);

    private static StatedShape ReadHfFields(string path)
    {
        using var document = JsonInput.ReadFile(path, "config file", GptConfig.MaxConfigFileBytes);
        return StatedShape.FromHfFields(JsonInput.Root(document, path));
    }

    private static void AddIf(List<StatedShape> parts, StatedShape? part)
    {
        if (part is not null)
        {
            parts.Add(part);
        }
    }
}

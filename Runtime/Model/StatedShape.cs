using System.Globalization;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Model;

/// <summary>
/// What one part of a model folder states about the model's shape: a config file (possibly only some fields, as
/// ONNX Runtime GenAI's configs do), the graph's declared dimensions, or a preset. Each value keeps the sentence that
/// states it, in the part's own terms (<c>genai_config.json says model.decoder.num_hidden_layers is 5</c>, <c>the graph
/// has 5 layers of past inputs</c>), so a disagreement between two parts is one message quoting both.
/// </summary>
internal sealed class StatedShape
{
    private readonly Dictionary<Field, (int Value, string Statement)> _values = [];

    /// <param name="source">The part, for messages: a file path, or a phrase such as "the graph".</param>
    /// <param name="isFile">A file beside the model (a disagreement with it means a stale file), rather than the graph or a preset.</param>
    public StatedShape(string source, bool isFile = true)
    {
        Source = source;
        IsFile = isFile;
    }

    /// <summary>The shape fields compared across a folder's parts.</summary>
    public enum Field
    {
        /// <summary>Tokens in the vocabulary (logits per position).</summary>
        VocabSize,

        /// <summary>Tokens of context.</summary>
        ContextLength,

        /// <summary>Embedding width.</summary>
        Width,

        /// <summary>Transformer layers.</summary>
        Layers,

        /// <summary>Query heads.</summary>
        Heads,

        /// <summary>Key/value heads (the cache's).</summary>
        KvHeads,

        /// <summary>Width of one head.</summary>
        HeadSize,

        /// <summary>The begin-of-sequence token.</summary>
        BosTokenId,

        /// <summary>The end-of-sequence token.</summary>
        EosTokenId,
    }

    /// <summary>The part's name in messages.</summary>
    public string Source { get; }

    /// <summary>A file beside the model, rather than the graph or a preset.</summary>
    public bool IsFile { get; }

    /// <summary>
    /// The part describes a model of the Llama family (RMSNorm, rotary positions, gated MLP): a <c>config.json</c> with
    /// <c>rms_norm_eps</c> or <c>model_type</c> llama, a GenAI config of <c>type</c> llama. It decides nothing about
    /// running a foreign graph (which computes all of that itself), only which family the config in use is described as.
    /// </summary>
    public bool LlamaLike { get; init; }

    /// <summary>The feed-forward width the part gives (<c>n_inner</c>, or a Llama config's <c>intermediate_size</c>), for the parameter count.</summary>
    public int? InnerWidth { get; init; }

    /// <summary>Every id of the part's end-token field when it lists several (Llama 3's and Qwen2's files do); the first is its <see cref="Field.EosTokenId"/>.</summary>
    public IReadOnlyList<int> EndIds { get; private set; } = [];

    /// <summary>
    /// Records the end id <paramref name="eos"/> gives under <paramref name="name"/>: an integer, or a list whose first
    /// id is the end token and whose every id ends a sequence.
    /// </summary>
    public StatedShape SaysEnds(JsonField? eos, string name)
    {
        if (eos is not { Kind: not System.Text.Json.JsonValueKind.Null } value)
        {
            return this;
        }

        if (value.Kind == System.Text.Json.JsonValueKind.Array)
        {
            EndIds = [.. value.Items().Select(i => i.GetInt32())];
        }

        return Says(Field.EosTokenId, FirstInt(value), name);
    }

    /// <summary>Whether the part states anything.</summary>
    public bool IsEmpty => _values.Count == 0;

    /// <summary>The value the part states for <paramref name="field"/>, or null.</summary>
    public int? this[Field field] => _values.TryGetValue(field, out var v) ? v.Value : null;

    /// <summary>The sentence stating <paramref name="field"/> (only for a field the part states).</summary>
    public string Statement(Field field) => _values[field].Statement;

    /// <summary>Records that the file's <paramref name="name"/> gives <paramref name="field"/> (nothing when <paramref name="value"/> is null).</summary>
    public StatedShape Says(Field field, int? value, string name)
    {
        if (value is { } v)
        {
            _values[field] = (v, $"{Source} says {name} is {v.ToString(CultureInfo.InvariantCulture)}");
        }

        return this;
    }

    /// <summary>Records <paramref name="field"/> with a sentence of its own (for the graph: "the graph has 5 layers of past inputs").</summary>
    public StatedShape Has(Field field, int? value, string statement)
    {
        if (value is { } v)
        {
            _values[field] = (v, statement);
        }

        return this;
    }

    /// <summary>Everything a complete config states, under Hugging Face GPT-2's field names (as <c>config.json</c> and our metadata write them).</summary>
    public static StatedShape FromConfig(GptConfig config, string source, bool isFile)
    {
        bool llama = config.Family == ModelFamily.Llama;
        return new StatedShape(source, isFile)
            .Says(Field.VocabSize, config.VocabSize, "vocab_size")
            .Says(Field.ContextLength, config.ContextLength, llama ? "max_position_embeddings" : "n_positions")
            .Says(Field.Width, config.Width, llama ? "hidden_size" : "n_embd")
            .Says(Field.Layers, config.Layers, llama ? "num_hidden_layers" : "n_layer")
            .Says(Field.Heads, config.Heads, llama ? "num_attention_heads" : "n_head")
            .Says(Field.KvHeads, config.KvHeads, config.KeyValueHeads is null ? (llama ? "num_attention_heads" : "n_head") : "num_key_value_heads")
            .Says(Field.HeadSize, config.HeadSize, llama ? "hidden_size / num_attention_heads" : "n_embd / n_head")
            .Says(Field.BosTokenId, config.BosTokenId, "bos_token_id")
            .Says(Field.EosTokenId, config.EosTokenId, "eos_token_id");
    }

    /// <summary>
    /// What a Hugging Face <c>config.json</c> states, field by field, for a file that may not be a complete config (ONNX
    /// Runtime GenAI's test folders carry one with the shape nested elsewhere): each field present must have the right
    /// type, and absent ones state nothing.
    /// </summary>
    public static StatedShape FromHfFields(JsonField root)
    {
        if (root.Kind != System.Text.Json.JsonValueKind.Object)
        {
            throw root.Error("a JSON object at the top level");
        }

        bool llama = root.Get("rms_norm_eps") is not null || root.Get("model_type") is { Kind: System.Text.Json.JsonValueKind.String } t && t.GetString() == "llama";
        var inner = root.Get(llama ? "intermediate_size" : "n_inner");
        var shape = new StatedShape(root.Source) { LlamaLike = llama, InnerWidth = inner is { } i ? i.GetInt32() : null };

        void From(Field field, params string[] names)
        {
            foreach (var name in names)
            {
                if (root.Get(name) is { Kind: not System.Text.Json.JsonValueKind.Null } value)
                {
                    shape.Says(field, FirstInt(value), name);
                    return;
                }
            }
        }

        From(Field.VocabSize, "vocab_size");
        From(Field.ContextLength, "n_positions", "n_ctx", "max_position_embeddings");
        From(Field.Width, "n_embd", "hidden_size");
        From(Field.Layers, "n_layer", "num_hidden_layers");
        From(Field.Heads, "n_head", "num_attention_heads");
        From(Field.KvHeads, "num_key_value_heads");
        From(Field.BosTokenId, "bos_token_id");
        shape.SaysEnds(root.Get("eos_token_id"), "eos_token_id");
        if (shape[Field.KvHeads] is null && shape[Field.Heads] is { } heads)
        {
            shape.Says(Field.KvHeads, heads, root.Get("n_head") is null ? "num_attention_heads" : "n_head");
        }

        if (shape[Field.Width] is { } width && shape[Field.Heads] is { } h && h > 0 && width % h == 0)
        {
            shape.Has(Field.HeadSize, width / h, $"{root.Source} gives head size {width / h} (width {width} / {h} heads)");
        }

        return shape;
    }

    /// <summary>An integer field; an array (several end ids) gives its first element.</summary>
    public static int FirstInt(JsonField field) =>
        field.Kind == System.Text.Json.JsonValueKind.Array && field.Count > 0 ? field.Items().First().GetInt32() : field.GetInt32();
}

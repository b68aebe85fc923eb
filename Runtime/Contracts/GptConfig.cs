using System.Text.Json;
using System.Text.Json.Nodes;

namespace OnnxGpt.Contracts;

/// <summary>
/// The shape of a GPT: everything needed to lay out its weights and build its graph.
/// Field names in JSON follow Hugging Face's GPT-2 <c>config.json</c>, so a checkpoint's config reads directly.
/// </summary>
public sealed record GptConfig
{
    /// <summary>Vocabulary size V.</summary>
    public required int VocabSize { get; init; }

    /// <summary>Context length: the number of learned positions (<c>n_positions</c>).</summary>
    public required int ContextLength { get; init; }

    /// <summary>Embedding width C (<c>n_embd</c>).</summary>
    public required int Width { get; init; }

    /// <summary>Number of transformer blocks (<c>n_layer</c>).</summary>
    public required int Layers { get; init; }

    /// <summary>Number of attention heads H (<c>n_head</c>).</summary>
    public required int Heads { get; init; }

    /// <summary>Feed-forward width (<c>n_inner</c>); null means 4 × width.</summary>
    public int? InnerWidth { get; init; }

    /// <summary>The feed-forward activation (<c>activation_function</c>).</summary>
    public Activation Activation { get; init; } = Activation.GeluNew;

    /// <summary>The layer norms' epsilon (<c>layer_norm_epsilon</c>).</summary>
    public double LayerNormEpsilon { get; init; } = 1e-5;

    /// <summary>Biases on the linear layers and layer norms (GPT-2 has them; nanoGPT's <c>bias=False</c> does not).</summary>
    public bool Bias { get; init; } = true;

    /// <summary>The output projection shares the token embedding (GPT-2) or has its own <c>lm_head.weight</c>.</summary>
    public bool TiedHead { get; init; } = true;

    /// <summary>Begin-of-sequence token id, if the vocabulary has one.</summary>
    public int? BosTokenId { get; init; }

    /// <summary>End-of-sequence token id, if the vocabulary has one.</summary>
    public int? EosTokenId { get; init; }

    /// <summary>The feed-forward width actually used.</summary>
    public int FeedForwardWidth => InnerWidth ?? 4 * Width;

    /// <summary>Head size D = C / H.</summary>
    public int HeadSize => Width / Heads;

    /// <summary>Checks every field and throws an <see cref="OnnxGptException"/> that gives the numbers.</summary>
    public GptConfig Validate(string source = "config")
    {
        static void Positive(string source, string field, long value)
        {
            if (value <= 0)
            {
                throw new OnnxGptException($"{source}: {field} must be positive, found {value}.");
            }
        }

        Positive(source, "vocab_size", VocabSize);
        Positive(source, "n_positions", ContextLength);
        Positive(source, "n_embd", Width);
        Positive(source, "n_layer", Layers);
        Positive(source, "n_head", Heads);
        if (InnerWidth is { } inner)
        {
            Positive(source, "n_inner", inner);
        }

        if (Width % Heads != 0)
        {
            throw new OnnxGptException(
                $"{source}: n_embd {Width} is not divisible by n_head {Heads}; each head needs an equal share of the width.");
        }

        if (!(LayerNormEpsilon > 0) || double.IsInfinity(LayerNormEpsilon))
        {
            throw new OnnxGptException($"{source}: layer_norm_epsilon must be a positive finite number, found {LayerNormEpsilon}.");
        }

        if (!Enum.IsDefined(Activation))
        {
            throw new OnnxGptException($"{source}: activation {(int)Activation} is not a known activation.");
        }

        CheckTokenId(source, "bos_token_id", BosTokenId);
        CheckTokenId(source, "eos_token_id", EosTokenId);

        // Keep every tensor addressable by a single float[] (and by int32 offsets in ONNX Runtime's kernels).
        long biggest = Math.Max((long)VocabSize * Width, Math.Max((long)Width * FeedForwardWidth, (long)ContextLength * Width));
        if (biggest > Array.MaxLength)
        {
            throw new OnnxGptException(
                $"{source}: the largest weight matrix would hold {biggest} values, more than the {Array.MaxLength} one array can hold.");
        }

        return this;
    }

    private void CheckTokenId(string source, string field, int? id)
    {
        if (id is { } value && (value < 0 || value >= VocabSize))
        {
            throw new OnnxGptException($"{source}: {field} {value} is outside the vocabulary [0, {VocabSize}).");
        }
    }

    /// <summary>Number of learned parameters (the tied head counted once).</summary>
    public long ParameterCount
    {
        get
        {
            long c = Width, f = FeedForwardWidth, b = Bias ? 1 : 0;
            long perLayer =
                (1 + b) * c                  // ln_1
                + c * 3 * c + b * 3 * c     // attn.c_attn
                + c * c + b * c             // attn.c_proj
                + (1 + b) * c               // ln_2
                + c * f + b * f             // mlp.c_fc
                + f * c + b * c;            // mlp.c_proj
            return (long)VocabSize * c + (long)ContextLength * c + Layers * perLayer + (1 + b) * c
                + (TiedHead ? 0 : (long)VocabSize * c);
        }
    }

    /// <summary>The config as Hugging Face GPT-2 <c>config.json</c> fields.</summary>
    public string ToJson(bool indented = true)
    {
        var node = new JsonObject
        {
            ["model_type"] = "gpt2",
            ["architectures"] = new JsonArray("GPT2LMHeadModel"),
            ["vocab_size"] = VocabSize,
            ["n_positions"] = ContextLength,
            ["n_ctx"] = ContextLength,
            ["n_embd"] = Width,
            ["n_layer"] = Layers,
            ["n_head"] = Heads,
            ["n_inner"] = InnerWidth,
            ["activation_function"] = Activation.ToConfigName(),
            ["layer_norm_epsilon"] = LayerNormEpsilon,
            ["bias"] = Bias,
            ["tie_word_embeddings"] = TiedHead,
            ["bos_token_id"] = BosTokenId,
            ["eos_token_id"] = EosTokenId,
        };
        return node.ToJsonString(new JsonSerializerOptions { WriteIndented = indented });
    }

    /// <summary>
    /// Reads a Hugging Face GPT-2 style <c>config.json</c>. Unknown fields are ignored; missing required fields
    /// and wrong types are errors naming the field. <paramref name="source"/> names the file in messages.
    /// </summary>
    public static GptConfig FromJson(string json, string source = "config.json")
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(json) as JsonObject
                ?? throw new OnnxGptException($"{source}: expected a JSON object at the top level.");
        }
        catch (JsonException e)
        {
            throw new OnnxGptException($"{source}: not valid JSON ({e.Message}).", e);
        }

        int RequiredInt(params string[] names)
        {
            foreach (var name in names)
            {
                if (ReadInt(root, name, source) is { } value)
                {
                    return value;
                }
            }

            throw new OnnxGptException($"{source}: required field '{names[0]}' is missing.");
        }

        var config = new GptConfig
        {
            VocabSize = RequiredInt("vocab_size"),
            ContextLength = RequiredInt("n_positions", "n_ctx", "max_position_embeddings"),
            Width = RequiredInt("n_embd", "hidden_size"),
            Layers = RequiredInt("n_layer", "num_hidden_layers"),
            Heads = RequiredInt("n_head", "num_attention_heads"),
            InnerWidth = ReadInt(root, "n_inner", source),
            Activation = root["activation_function"] is JsonValue act
                ? ActivationNames.Parse(ReadString(act, "activation_function", source), source)
                : Activation.GeluNew,
            LayerNormEpsilon = ReadDouble(root, "layer_norm_epsilon", source) ?? 1e-5,
            Bias = ReadBool(root, "bias", source) ?? true,
            TiedHead = ReadBool(root, "tie_word_embeddings", source) ?? true,
            BosTokenId = ReadInt(root, "bos_token_id", source),
            EosTokenId = ReadInt(root, "eos_token_id", source),
        };
        return config.Validate(source);
    }

    private static string ReadString(JsonValue value, string field, string source) =>
        value.TryGetValue<string>(out var s) ? s : throw new OnnxGptException($"{source}: field '{field}' must be a string, found {value.ToJsonString()}.");

    private static int? ReadInt(JsonObject root, string field, string source)
    {
        var node = root[field];
        if (node is null)
        {
            return null;
        }

        if (node is JsonValue v && v.TryGetValue<long>(out var l) && l is >= int.MinValue and <= int.MaxValue)
        {
            return (int)l;
        }

        if (node is JsonValue d && d.TryGetValue<double>(out var x) && x == Math.Floor(x) && Math.Abs(x) <= int.MaxValue)
        {
            return (int)x;
        }

        throw new OnnxGptException($"{source}: field '{field}' must be an integer, found {node.ToJsonString()}.");
    }

    private static double? ReadDouble(JsonObject root, string field, string source)
    {
        var node = root[field];
        if (node is null)
        {
            return null;
        }

        return node is JsonValue v && v.TryGetValue<double>(out var x)
            ? x
            : throw new OnnxGptException($"{source}: field '{field}' must be a number, found {node.ToJsonString()}.");
    }

    private static bool? ReadBool(JsonObject root, string field, string source)
    {
        var node = root[field];
        if (node is null)
        {
            return null;
        }

        return node is JsonValue v && v.TryGetValue<bool>(out var b)
            ? b
            : throw new OnnxGptException($"{source}: field '{field}' must be true or false, found {node.ToJsonString()}.");
    }
}

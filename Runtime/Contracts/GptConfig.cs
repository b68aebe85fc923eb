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

    /// <summary>The most transformer blocks a config may have (GPT-2 XL has 48). Checked before anything is sized from n_layer.</summary>
    public const int MaxLayers = 1024;

    /// <summary>The most attention heads.</summary>
    public const int MaxHeads = 1024;

    /// <summary>The widest embedding (n_embd).</summary>
    public const int MaxWidth = 1 << 17;

    /// <summary>The widest feed-forward layer (n_inner).</summary>
    public const int MaxInnerWidth = 1 << 19;

    /// <summary>The largest vocabulary (2^24 tokens).</summary>
    public const int MaxVocabSize = 1 << 24;

    /// <summary>The longest context (2^22 positions).</summary>
    public const int MaxContextLength = 1 << 22;

    /// <summary>Checks every field and throws an <see cref="OnnxGptException"/> that gives the numbers.</summary>
    public GptConfig Validate(string source = "config")
    {
        static void InRange(string source, string field, long value, long max)
        {
            if (value <= 0 || value > max)
            {
                throw new OnnxGptException(value <= 0
                    ? $"{source}: {field} must be positive, found {value}."
                    : $"{source}: {field} is {value}, above this project's limit of {max}; is the config right?");
            }
        }

        InRange(source, "vocab_size", VocabSize, MaxVocabSize);
        InRange(source, "n_positions", ContextLength, MaxContextLength);
        InRange(source, "n_embd", Width, MaxWidth);
        InRange(source, "n_layer", Layers, MaxLayers);
        InRange(source, "n_head", Heads, MaxHeads);
        if (InnerWidth is { } inner)
        {
            InRange(source, "n_inner", inner, MaxInnerWidth);
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
    /// Reads a Hugging Face GPT-2 style <c>config.json</c> through <see cref="JsonInput"/> (duplicate keys refused).
    /// Unknown fields are ignored; missing required fields, wrong types and values beyond the limits are errors
    /// naming the field. <paramref name="source"/> names the file in messages.
    /// </summary>
    public static GptConfig FromJson(string json, string source = "config.json")
    {
        using var document = JsonInput.Parse(json, source);
        return FromJson(JsonInput.Root(document, source));
    }

    /// <summary>Reads a <c>config.json</c> file (a regular file, through <see cref="JsonInput.ReadFile"/>).</summary>
    /// <exception cref="OnnxGptException">The file is missing, unreadable, or not a valid config; the message names it.</exception>
    public static GptConfig FromFile(string path)
    {
        using var document = JsonInput.ReadFile(path, "config file", MaxConfigFileBytes);
        return FromJson(JsonInput.Root(document, path));
    }

    /// <summary>The largest config file read (a Hugging Face config.json is a few KiB).</summary>
    public const long MaxConfigFileBytes = 16L << 20;

    private static GptConfig FromJson(JsonField root)
    {
        if (root.Kind != JsonValueKind.Object)
        {
            throw root.Error("a JSON object at the top level");
        }

        int RequiredInt(params string[] names)
        {
            foreach (var name in names)
            {
                if (root.Get(name) is { } value)
                {
                    return value.GetInt32();
                }
            }

            throw new OnnxGptException($"{root.Source}: required field '{names[0]}' is missing.");
        }

        var config = new GptConfig
        {
            VocabSize = RequiredInt("vocab_size"),
            ContextLength = RequiredInt("n_positions", "n_ctx", "max_position_embeddings"),
            Width = RequiredInt("n_embd", "hidden_size"),
            Layers = RequiredInt("n_layer", "num_hidden_layers"),
            Heads = RequiredInt("n_head", "num_attention_heads"),
            InnerWidth = root.Get("n_inner")?.GetInt32(),
            Activation = root.Get("activation_function") is { } act
                ? ActivationNames.Parse(act.GetString(), root.Source)
                : Activation.GeluNew,
            LayerNormEpsilon = root.Get("layer_norm_epsilon")?.GetDouble() ?? 1e-5,
            Bias = root.Get("bias")?.GetBoolean() ?? true,
            TiedHead = root.Get("tie_word_embeddings")?.GetBoolean() ?? true,
            BosTokenId = TokenId(root, "bos_token_id"),
            EosTokenId = TokenId(root, "eos_token_id"),
        };
        return config.Validate(root.Source);
    }

    /// <summary>A token id; a list (newer configs allow several end ids) gives its first.</summary>
    private static int? TokenId(JsonField root, string name) => root.Get(name) is not { } value
        ? null
        : value.Kind == JsonValueKind.Array
            ? value.Items().Select(i => (int?)i.GetInt32()).FirstOrDefault()
            : value.GetInt32();
}

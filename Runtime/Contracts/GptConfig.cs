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

    /// <summary>The checkpoint family: tensor names and layouts, and the spelling of <c>config.json</c>.</summary>
    public ModelFamily Family { get; init; } = ModelFamily.Gpt2;

    /// <summary>LayerNorm (GPT-2) or RMSNorm (Llama).</summary>
    public NormKind Norm { get; init; } = NormKind.LayerNorm;

    /// <summary>Learned position embeddings (GPT-2) or rotary ones (Llama).</summary>
    public PositionEncoding Positions { get; init; } = PositionEncoding.Learned;

    /// <summary>A plain MLP (GPT-2) or a gated one (Llama's SwiGLU).</summary>
    public MlpKind Mlp { get; init; } = MlpKind.Plain;

    /// <summary>Key/value heads (<c>num_key_value_heads</c>); null means one per query head. Fewer is grouped-query attention.</summary>
    public int? KeyValueHeads { get; init; }

    /// <summary>The rotary base θ (<c>rope_theta</c>), for <see cref="PositionEncoding.Rotary"/>.</summary>
    public double RopeTheta { get; init; } = 10000;

    /// <summary>
    /// Which dimensions of a head the rotary embedding rotates together. True: the pairs (2i, 2i + 1), as Meta's
    /// original Llama code and llama2.c do. False: (i, i + D/2), the "rotate half" of Hugging Face's Llama, whose
    /// conversion script permutes the rows of q_proj and k_proj so that the same network computes the same thing.
    /// It follows the weights, not the model: a llama2.c checkpoint is interleaved, a Hugging Face one is not.
    /// </summary>
    public bool RotaryInterleaved { get; init; }

    /// <summary>Begin-of-sequence token id, if the vocabulary has one.</summary>
    public int? BosTokenId { get; init; }

    /// <summary>End-of-sequence token id, if the vocabulary has one.</summary>
    public int? EosTokenId { get; init; }

    /// <summary>The feed-forward width actually used.</summary>
    public int FeedForwardWidth => InnerWidth ?? 4 * Width;

    /// <summary>Head size D = C / H.</summary>
    public int HeadSize => Width / Heads;

    /// <summary>Key/value heads actually used: <see cref="KeyValueHeads"/>, or one per query head.</summary>
    public int KvHeads => KeyValueHeads ?? Heads;

    /// <summary>Width of the keys (and of the values): key/value heads × head size.</summary>
    public int KvWidth => KvHeads * HeadSize;

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

        bool llama = Family == ModelFamily.Llama;
        string width = llama ? "hidden_size" : "n_embd", heads = llama ? "num_attention_heads" : "n_head";
        InRange(source, "vocab_size", VocabSize, MaxVocabSize);
        InRange(source, llama ? "max_position_embeddings" : "n_positions", ContextLength, MaxContextLength);
        InRange(source, width, Width, MaxWidth);
        InRange(source, llama ? "num_hidden_layers" : "n_layer", Layers, MaxLayers);
        InRange(source, heads, Heads, MaxHeads);
        if (InnerWidth is { } inner)
        {
            InRange(source, llama ? "intermediate_size" : "n_inner", inner, MaxInnerWidth);
        }

        if (Width % Heads != 0)
        {
            throw new OnnxGptException(
                $"{source}: {width} {Width} is not divisible by {heads} {Heads}; each head needs an equal share of the width.");
        }

        ValidateFamily(source, heads);

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

    /// <summary>The choices each family's checkpoints have; a combination no checkpoint has is refused, not guessed at.</summary>
    private void ValidateFamily(string source, string heads)
    {
        if (!Enum.IsDefined(Family) || !Enum.IsDefined(Norm) || !Enum.IsDefined(Positions) || !Enum.IsDefined(Mlp))
        {
            throw new OnnxGptException($"{source}: family {Family}, norm {Norm}, positions {Positions} or MLP {Mlp} is not a known value.");
        }

        if (KeyValueHeads is { } kv && (kv <= 0 || Heads % kv != 0))
        {
            throw new OnnxGptException(
                $"{source}: num_key_value_heads {kv} must be positive and divide {heads} {Heads}; each key/value head serves an equal group of query heads.");
        }

        if (Family == ModelFamily.Gpt2)
        {
            if (Norm != NormKind.LayerNorm || Positions != PositionEncoding.Learned || Mlp != MlpKind.Plain || KvHeads != Heads)
            {
                throw new OnnxGptException(
                    $"{source}: a GPT-2 family model has LayerNorm, learned positions, a plain MLP and one key/value head per head; " +
                    $"found norm {Norm}, positions {Positions}, MLP {Mlp}, {KvHeads} key/value heads. Use the Llama family for the others.");
            }

            return;
        }

        if (Norm != NormKind.RmsNorm || Positions != PositionEncoding.Rotary || Mlp != MlpKind.Gated || Activation != Activation.Silu)
        {
            throw new OnnxGptException(
                $"{source}: a Llama family model has RMSNorm, rotary positions and a SiLU-gated MLP; found norm {Norm}, positions {Positions}, " +
                $"MLP {Mlp}, activation {Activation.ToConfigName()}.");
        }

        if (Bias)
        {
            throw new OnnxGptException(
                $"{source}: attention_bias / mlp_bias true is not supported for the Llama family; expected false (Llama's projections have no biases).");
        }

        if (InnerWidth is null)
        {
            throw new OnnxGptException($"{source}: required field 'intermediate_size' is missing.");
        }

        if (HeadSize % 2 != 0)
        {
            throw new OnnxGptException($"{source}: rotary embeddings rotate pairs of dimensions, so the head size must be even; found {HeadSize}.");
        }

        if (!(RopeTheta > 0) || double.IsInfinity(RopeTheta))
        {
            throw new OnnxGptException($"{source}: rope_theta must be a positive finite number, found {RopeTheta}.");
        }
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
            if (Family == ModelFamily.Llama)
            {
                long kv = KvWidth;
                long llamaLayer =
                    c                       // input_layernorm
                    + c * (c + 2 * kv)      // q_proj, k_proj, v_proj
                    + c * c                 // o_proj
                    + c                     // post_attention_layernorm
                    + 3 * c * f;            // gate_proj, up_proj, down_proj
                return (long)VocabSize * c + Layers * llamaLayer + c + (TiedHead ? 0 : (long)VocabSize * c);
            }

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
        var node = Family == ModelFamily.Llama ? LlamaJson() : new JsonObject
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
    /// Hugging Face <c>LlamaForCausalLM</c> fields, plus OnnxGpt's <c>rotary_interleaved</c> (true only for weights in
    /// Meta's interleaved layout, such as a llama2.c checkpoint's; Hugging Face weights are never interleaved).
    /// </summary>
    private JsonObject LlamaJson() => new()
    {
        ["model_type"] = "llama",
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["vocab_size"] = VocabSize,
        ["max_position_embeddings"] = ContextLength,
        ["hidden_size"] = Width,
        ["intermediate_size"] = FeedForwardWidth,
        ["num_hidden_layers"] = Layers,
        ["num_attention_heads"] = Heads,
        ["num_key_value_heads"] = KvHeads,
        ["head_dim"] = HeadSize,
        ["hidden_act"] = Activation.ToConfigName(),
        ["rms_norm_eps"] = LayerNormEpsilon,
        ["rope_theta"] = RopeTheta,
        ["rope_scaling"] = null,
        ["rotary_interleaved"] = RotaryInterleaved,
        ["attention_bias"] = false,
        ["mlp_bias"] = false,
        ["tie_word_embeddings"] = TiedHead,
        ["bos_token_id"] = BosTokenId,
        ["eos_token_id"] = EosTokenId,
    };

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

        if (IsLlama(root))
        {
            return LlamaFromJson(root);
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

    /// <summary>Rotary scalings: only the plain one is implemented.</summary>
    private static readonly string[] PlainRopeTypes = ["default"];

    /// <summary><c>model_type</c> <c>llama</c>, or <c>LlamaForCausalLM</c> among the architectures.</summary>
    private static bool IsLlama(JsonField root)
    {
        string? type = root.Get("model_type")?.GetString();
        bool llamaArchitecture = root.Get("architectures") is { Kind: JsonValueKind.Array } a
            && a.Items().Any(x => x.Kind == JsonValueKind.String && x.GetString() == "LlamaForCausalLM");
        if (type == "llama" || llamaArchitecture)
        {
            return true;
        }

        if (type is not null && type != "gpt2" && root.Get("rms_norm_eps") is not null)
        {
            throw new OnnxGptException($"{root.Source}: model_type '{type}' is not supported; expected 'gpt2' or 'llama' (LlamaForCausalLM).");
        }

        return false;
    }

    private static GptConfig LlamaFromJson(JsonField root)
    {
        string source = root.Source;
        int Required(string name) => root.Get(name)?.GetInt32() ?? throw new OnnxGptException($"{source}: required field '{name}' is missing.");

        if (root.Get("rope_scaling") is { } scaling && scaling.Kind != JsonValueKind.Null)
        {
            if (scaling.Kind != JsonValueKind.Object)
            {
                throw new OnnxGptException($"{source}: field 'rope_scaling' must be an object or null, found {JsonField.Show(scaling.Element)}.");
            }

            var kind = scaling.Get("rope_type") ?? scaling.Get("type");
            string name = kind is { Kind: JsonValueKind.String } k ? k.GetString() : kind is { } other ? JsonField.Show(other.Element) : "(none)";
            if (!PlainRopeTypes.Contains(name))
            {
                throw new OnnxGptException(
                    $"{source}: rope_scaling type '{name}' is not implemented; only unscaled rotary embeddings are supported " +
                    "(rope_scaling null, or rope_type 'default'). Scaled variants (linear, dynamic, yarn, longrope, llama3) would compute different positions.");
            }
        }

        foreach (var flag in new[] { "attention_bias", "mlp_bias" })
        {
            if (root.Get(flag)?.GetBoolean() == true)
            {
                throw new OnnxGptException($"{source}: {flag} true is not supported; expected false (Llama's projections have no biases).");
            }
        }

        if (root.Get("partial_rotary_factor")?.GetDouble() is { } partial && partial != 1)
        {
            throw new OnnxGptException($"{source}: partial_rotary_factor {partial} is not supported; expected 1 (every dimension of a head rotated).");
        }

        int width = Required("hidden_size"), heads = Required("num_attention_heads");
        var config = new GptConfig
        {
            Family = ModelFamily.Llama,
            Norm = NormKind.RmsNorm,
            Positions = PositionEncoding.Rotary,
            Mlp = MlpKind.Gated,
            Bias = false,
            VocabSize = Required("vocab_size"),
            ContextLength = Required("max_position_embeddings"),
            Width = width,
            Layers = Required("num_hidden_layers"),
            Heads = heads,
            KeyValueHeads = root.Get("num_key_value_heads")?.GetInt32(),
            InnerWidth = Required("intermediate_size"),
            Activation = root.Get("hidden_act") is { } act ? ActivationNames.Parse(act.GetString(), source) : Activation.Silu,
            LayerNormEpsilon = root.Get("rms_norm_eps")?.GetDouble() ?? 1e-6,
            RopeTheta = root.Get("rope_theta")?.GetDouble() ?? 10000,
            RotaryInterleaved = root.Get("rotary_interleaved")?.GetBoolean() ?? false,
            TiedHead = root.Get("tie_word_embeddings")?.GetBoolean() ?? false,
            BosTokenId = TokenId(root, "bos_token_id"),
            EosTokenId = TokenId(root, "eos_token_id"),
        };
        if (root.Get("head_dim")?.GetInt32() is { } headDim && heads > 0 && (long)headDim * heads != width)
        {
            throw new OnnxGptException(
                $"{source}: head_dim {headDim} × num_attention_heads {heads} is {(long)headDim * heads}, not hidden_size {width}; " +
                "a head size other than hidden_size / num_attention_heads is not supported.");
        }

        return config.Validate(source);
    }
}

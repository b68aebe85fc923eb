using OnnxGpt.Contracts;

namespace OnnxGpt.Exporter.Model;

/// <summary>
/// The weights of a GPT as named tensors under Hugging Face GPT-2 names
/// (<c>transformer.h.{i}.attn.c_attn.weight</c>, ...). Projection weights use GPT-2's Conv1D layout
/// <c>[in_features, out_features]</c>, which is what <c>x @ W</c> wants, so the graph uses them as they are.
/// </summary>
public sealed class GptWeights
{
    private readonly Dictionary<string, Tensor> _tensors;

    /// <summary>Weights for <paramref name="config"/>, every tensor checked against its expected shape; <paramref name="source"/> names them in error messages.</summary>
    public GptWeights(GptConfig config, IReadOnlyDictionary<string, Tensor> tensors, string source = "weights")
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(tensors);
        Config = config.Validate(source);
        var expected = ExpectedShapes(config);
        foreach (var (name, shape) in expected)
        {
            if (!tensors.TryGetValue(name, out var tensor))
            {
                throw new OnnxGptException($"{source}: tensor '{name}' is missing; expected shape {Tensor.FormatShape(shape)}.");
            }

            if (!tensor.ShapeEquals(shape))
            {
                throw new OnnxGptException(
                    $"{source}: tensor '{name}' has shape {tensor.ShapeText}, expected {Tensor.FormatShape(shape)} for this config.");
            }
        }

        var extra = tensors.Keys.Where(k => !expected.ContainsKey(k)).Order(StringComparer.Ordinal).ToList();
        if (extra.Count > 0)
        {
            throw new OnnxGptException(
                $"{source}: unexpected tensor(s) {string.Join(", ", extra.Select(e => $"'{e}'"))} that this config does not use.");
        }

        _tensors = new Dictionary<string, Tensor>(tensors, StringComparer.Ordinal);
    }

    /// <summary>The shape these weights belong to.</summary>
    public GptConfig Config { get; }

    /// <summary>Tensor names in canonical order (embeddings, blocks, final norm, head).</summary>
    public IEnumerable<string> Names => ExpectedShapes(Config).Keys;

    /// <summary>The tensor named <paramref name="name"/> (a Hugging Face GPT-2 name).</summary>
    public Tensor this[string name] => _tensors.TryGetValue(name, out var t)
        ? t
        : throw new KeyNotFoundException($"weights have no tensor '{name}'.");

    /// <summary>
    /// The same tensors under <paramref name="config"/>, which must describe the same shapes (to record token ids a
    /// tokenizer names, say); the tensors are shared, not copied.
    /// </summary>
    public GptWeights WithConfig(GptConfig config) => new(config, _tensors, "weights");

    /// <summary>Whether there is a tensor named <paramref name="name"/>.</summary>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>The output projection <c>[V, C]</c>: the token embedding when tied, else <c>lm_head.weight</c>.</summary>
    public Tensor Head => this[HeadName(Config)];

    /// <summary>The token embedding <c>[V, C]</c>.</summary>
    public Tensor Embedding => this[EmbeddingName(Config)];

    /// <summary>The name of the token embedding: <c>transformer.wte.weight</c> or <c>model.embed_tokens.weight</c>.</summary>
    public static string EmbeddingName(GptConfig config) =>
        config.Family == ModelFamily.Llama ? LlamaTensorNames.Embedding : TensorNames.Wte;

    /// <summary>The name of the output projection: the token embedding when tied, else <c>lm_head.weight</c>.</summary>
    public static string HeadName(GptConfig config) => config.TiedHead ? EmbeddingName(config) : TensorNames.LmHead;

    /// <summary>Every tensor a config needs, by name, with its shape, in canonical order.</summary>
    public static IReadOnlyDictionary<string, int[]> ExpectedShapes(GptConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Family == ModelFamily.Llama)
        {
            return LlamaShapes(config);
        }

        int c = config.Width, f = config.FeedForwardWidth, v = config.VocabSize;
        var shapes = new Dictionary<string, int[]>(StringComparer.Ordinal)
        {
            [TensorNames.Wte] = [v, c],
            [TensorNames.Wpe] = [config.ContextLength, c],
        };
        for (int i = 0; i < config.Layers; i++)
        {
            var b = TensorNames.Block(i);
            shapes[b + "ln_1.weight"] = [c];
            AddBias(b + "ln_1.bias", c);
            shapes[b + "attn.c_attn.weight"] = [c, 3 * c];
            AddBias(b + "attn.c_attn.bias", 3 * c);
            shapes[b + "attn.c_proj.weight"] = [c, c];
            AddBias(b + "attn.c_proj.bias", c);
            shapes[b + "ln_2.weight"] = [c];
            AddBias(b + "ln_2.bias", c);
            shapes[b + "mlp.c_fc.weight"] = [c, f];
            AddBias(b + "mlp.c_fc.bias", f);
            shapes[b + "mlp.c_proj.weight"] = [f, c];
            AddBias(b + "mlp.c_proj.bias", c);
        }

        shapes[TensorNames.LnF + ".weight"] = [c];
        AddBias(TensorNames.LnF + ".bias", c);
        if (!config.TiedHead)
        {
            shapes[TensorNames.LmHead] = [v, c];
        }

        return shapes;

        void AddBias(string name, int size)
        {
            if (config.Bias)
            {
                shapes[name] = [size];
            }
        }
    }

    /// <summary>The Llama family's tensors: Hugging Face names, projections as <c>[out, in]</c>.</summary>
    private static Dictionary<string, int[]> LlamaShapes(GptConfig config)
    {
        int c = config.Width, f = config.FeedForwardWidth, v = config.VocabSize, kv = config.KvWidth;
        var shapes = new Dictionary<string, int[]>(StringComparer.Ordinal) { [LlamaTensorNames.Embedding] = [v, c] };
        for (int i = 0; i < config.Layers; i++)
        {
            shapes[LlamaTensorNames.InputNorm(i)] = [c];
            shapes[LlamaTensorNames.Attention(i, "q_proj")] = [c, c];
            shapes[LlamaTensorNames.Attention(i, "k_proj")] = [kv, c];
            shapes[LlamaTensorNames.Attention(i, "v_proj")] = [kv, c];
            shapes[LlamaTensorNames.Attention(i, "o_proj")] = [c, c];
            shapes[LlamaTensorNames.PostAttentionNorm(i)] = [c];
            shapes[LlamaTensorNames.Mlp(i, "gate_proj")] = [f, c];
            shapes[LlamaTensorNames.Mlp(i, "up_proj")] = [f, c];
            shapes[LlamaTensorNames.Mlp(i, "down_proj")] = [c, f];
        }

        shapes[LlamaTensorNames.FinalNorm] = [c];
        if (!config.TiedHead)
        {
            shapes[LlamaTensorNames.LmHead] = [v, c];
        }

        return shapes;
    }
}

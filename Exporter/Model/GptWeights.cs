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

    /// <summary>Whether there is a tensor named <paramref name="name"/>.</summary>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>The output projection <c>[V, C]</c>: the token embedding when tied, else <c>lm_head.weight</c>.</summary>
    public Tensor Head => Config.TiedHead ? this[TensorNames.Wte] : this[TensorNames.LmHead];

    /// <summary>Every tensor a config needs, by name, with its shape, in canonical order.</summary>
    public static IReadOnlyDictionary<string, int[]> ExpectedShapes(GptConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
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
}

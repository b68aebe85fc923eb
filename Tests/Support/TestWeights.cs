using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Tests.Support;

/// <summary>
/// Random weights for numerical tests: larger than GPT-2's 0.02 so logits are far from uniform and every path
/// (attention, activation, layer norm gains and biases) moves the result.
/// </summary>
internal static class TestWeights
{
    public static GptWeights Random(GptConfig config, ulong seed, double scale = 0.3)
    {
        var rng = new SplitMix(seed);
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (name, shape) in GptWeights.ExpectedShapes(config))
        {
            var t = new Tensor(shape);
            bool isNormGain = name.EndsWith("ln_1.weight", StringComparison.Ordinal) || name.EndsWith("ln_2.weight", StringComparison.Ordinal)
                || name == TensorNames.LnF + ".weight"
                || name.EndsWith("layernorm.weight", StringComparison.Ordinal) || name == LlamaTensorNames.FinalNorm;
            for (int i = 0; i < t.Data.Length; i++)
            {
                double u = rng.NextDouble() * 2 - 1;
                t.Data[i] = (float)(isNormGain ? 1 + 0.5 * u : scale * u);
            }

            tensors[name] = t;
        }

        return new GptWeights(config, tensors);
    }

    /// <summary>A small shape; <paramref name="width"/> 16 gives head sizes 4-16, the fused graph needs multiples of 8.</summary>
    public static GptConfig Small(int heads = 2, Activation activation = Activation.GeluNew, bool bias = true, bool tied = true, int layers = 2, int width = 16) => new()
    {
        VocabSize = 53, ContextLength = 24, Width = width, Layers = layers, Heads = heads, Activation = activation,
        Bias = bias, TiedHead = tied, InnerWidth = heads == 1 ? 24 : null,
    };

    /// <summary>
    /// A small Llama-family shape: width 32, head size 32 / <paramref name="heads"/> (8 for the fused graph's
    /// GroupQueryAttention), <paramref name="kvHeads"/> key/value heads, SwiGLU width 48.
    /// </summary>
    public static GptConfig SmallLlama(int heads = 4, int kvHeads = 2, bool interleaved = true, bool tied = true, int layers = 2, double theta = 10000) => new()
    {
        Family = ModelFamily.Llama, Norm = NormKind.RmsNorm, Positions = PositionEncoding.Rotary, Mlp = MlpKind.Gated,
        Activation = Activation.Silu, Bias = false, VocabSize = 53, ContextLength = 24, Width = 32, Layers = layers, Heads = heads,
        KeyValueHeads = kvHeads, InnerWidth = 48, RotaryInterleaved = interleaved, TiedHead = tied, RopeTheta = theta, LayerNormEpsilon = 1e-5,
    };

    /// <summary>SplitMix64: a fixed algorithm, so test data is the same everywhere.</summary>
    private sealed class SplitMix(ulong state)
    {
        public ulong Next()
        {
            ulong z = state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));
    }
}

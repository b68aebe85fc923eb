using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Exporter.Reference;

// Shapes: B batch, T tokens, C width, H heads, D head size, F feed-forward width, V vocabulary.

/// <summary>
/// The ground truth: a plain-loop forward pass with double accumulation, written to be read, not to be fast.
/// Exported graphs are tested against it. Both families: GPT-2 (LayerNorm, learned positions, GELU MLP) and Llama
/// (RMSNorm, rotary positions in either pairing, grouped-query attention, SwiGLU MLP).
/// </summary>
public static class ReferenceGpt
{
    /// <summary>
    /// Logits (B, T, V) for a batch of token rows of equal length. <paramref name="attentionMask"/> (1 = attend,
    /// 0 = padding) defaults to all ones; <paramref name="positionIds"/> defaults to 0..T-1. A query that may attend
    /// to no key (a padding position before any real token) gets zero logits: it is undefined, never compared.
    /// </summary>
    public static float[][][] Logits(GptWeights weights, long[][] inputIds, long[][]? attentionMask = null, long[][]? positionIds = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(inputIds);
        var result = new float[inputIds.Length][][];
        for (int b = 0; b < inputIds.Length; b++)
        {
            int t = inputIds[b].Length;
            long[] mask = attentionMask?[b] ?? Enumerable.Repeat(1L, t).ToArray();
            long[] pos = positionIds?[b] ?? Enumerable.Range(0, t).Select(i => (long)i).ToArray();
            if (mask.Length != t || pos.Length != t)
            {
                throw new ArgumentException($"row {b}: input_ids has {t} tokens, attention_mask {mask.Length}, position_ids {pos.Length}.");
            }

            result[b] = Row(weights, inputIds[b], mask, pos);
        }

        return result;
    }

    private static float[][] Row(GptWeights w, long[] ids, long[] mask, long[] pos) =>
        w.Config.Family == ModelFamily.Llama ? LlamaRow(w, ids, mask, pos) : Gpt2Row(w, ids, mask, pos);

    private static float[][] Gpt2Row(GptWeights w, long[] ids, long[] mask, long[] pos)
    {
        var c = w.Config;
        int t = ids.Length;
        var x = new double[t][];
        var wte = w[TensorNames.Wte];
        var wpe = w[TensorNames.Wpe];
        for (int i = 0; i < t; i++)
        {
            CheckIndex(ids[i], c.VocabSize, "input_ids");
            CheckIndex(pos[i], c.ContextLength, "position_ids");
            x[i] = new double[c.Width];
            for (int k = 0; k < c.Width; k++)
            {
                x[i][k] = (double)wte.Data[ids[i] * c.Width + k] + wpe.Data[pos[i] * c.Width + k];
            }
        }

        for (int layer = 0; layer < c.Layers; layer++)
        {
            string p = TensorNames.Block(layer);
            var attn = Attention(w, p, x.Select(r => LayerNorm(w, p + "ln_1", r)).ToArray(), mask);
            for (int i = 0; i < t; i++)
            {
                Accumulate(x[i], attn[i]);                 // x = x + attn(ln_1(x))
            }

            for (int i = 0; i < t; i++)
            {
                Accumulate(x[i], Mlp(w, p, LayerNorm(w, p + "ln_2", x[i])));   // x = x + mlp(ln_2(x))
            }
        }

        return x.Select(r => HeadLogits(w, LayerNorm(w, TensorNames.LnF, r))).ToArray();
    }

    /// <summary>logits = head · h, the head being [V, C] (the token embedding when tied).</summary>
    private static float[] HeadLogits(GptWeights w, double[] h)
    {
        var c = w.Config;
        var head = w.Head;
        var logits = new float[c.VocabSize];
        for (int v = 0; v < c.VocabSize; v++)
        {
            double sum = 0;
            for (int k = 0; k < c.Width; k++)
            {
                sum += h[k] * head.Data[(long)v * c.Width + k];
            }

            logits[v] = (float)sum;
        }

        return logits;
    }

    /// <summary>
    /// The Llama recipe: x = embed[ids]; per block x = x + attn(rmsnorm(x)), x = x + mlp(rmsnorm(x)) with rotary
    /// positions on q and k, grouped-query attention and a SwiGLU MLP; logits = head · rmsnorm(x).
    /// </summary>
    private static float[][] LlamaRow(GptWeights w, long[] ids, long[] mask, long[] pos)
    {
        var c = w.Config;
        int t = ids.Length;
        var embed = w.Embedding;
        var x = new double[t][];
        for (int i = 0; i < t; i++)
        {
            CheckIndex(ids[i], c.VocabSize, "input_ids");
            CheckIndex(pos[i], c.ContextLength, "position_ids");
            x[i] = new double[c.Width];
            for (int k = 0; k < c.Width; k++)
            {
                x[i][k] = embed.Data[ids[i] * c.Width + k];
            }
        }

        for (int layer = 0; layer < c.Layers; layer++)
        {
            var attn = LlamaAttention(w, layer, x.Select(r => RmsNorm(w, LlamaTensorNames.InputNorm(layer), r)).ToArray(), mask, pos);
            for (int i = 0; i < t; i++)
            {
                Accumulate(x[i], attn[i]);                 // x = x + attn(input_layernorm(x))
            }

            for (int i = 0; i < t; i++)
            {
                Accumulate(x[i], GatedMlp(w, layer, RmsNorm(w, LlamaTensorNames.PostAttentionNorm(layer), x[i])));   // x = x + mlp(post_attention_layernorm(x))
            }
        }

        return x.Select(r => HeadLogits(w, RmsNorm(w, LlamaTensorNames.FinalNorm, r))).ToArray();
    }

    /// <summary>Grouped-query attention: query head h reads key/value head h / (H / H_kv); q and k rotated first.</summary>
    private static double[][] LlamaAttention(GptWeights w, int layer, double[][] x, long[] mask, long[] pos)
    {
        var c = w.Config;
        int t = x.Length, d = c.HeadSize, group = c.Heads / c.KvHeads;
        var q = x.Select(r => Project(w, LlamaTensorNames.Attention(layer, "q_proj"), r)).ToArray();   // (T, H·D)
        var k = x.Select(r => Project(w, LlamaTensorNames.Attention(layer, "k_proj"), r)).ToArray();   // (T, H_kv·D)
        var v = x.Select(r => Project(w, LlamaTensorNames.Attention(layer, "v_proj"), r)).ToArray();   // (T, H_kv·D)
        for (int i = 0; i < t; i++)
        {
            Rotate(q[i], c.Heads, d, pos[i], c.RopeTheta, c.RotaryInterleaved);
            Rotate(k[i], c.KvHeads, d, pos[i], c.RopeTheta, c.RotaryInterleaved);
        }

        var y = new double[t][];
        for (int i = 0; i < t; i++)
        {
            y[i] = new double[c.Width];
            for (int h = 0; h < c.Heads; h++)
            {
                int kvHead = h / group;
                var scores = new double[i + 1];
                double max = double.NegativeInfinity;
                for (int s = 0; s <= i; s++)
                {
                    if (mask[s] == 0)
                    {
                        continue;
                    }

                    double dot = 0;
                    for (int e = 0; e < d; e++)
                    {
                        dot += q[i][h * d + e] * k[s][kvHead * d + e];
                    }

                    scores[s] = dot / Math.Sqrt(d);
                    max = Math.Max(max, scores[s]);
                }

                if (double.IsNegativeInfinity(max))
                {
                    continue;
                }

                double total = 0;
                for (int s = 0; s <= i; s++)
                {
                    scores[s] = mask[s] == 0 ? 0 : Math.Exp(scores[s] - max);
                    total += scores[s];
                }

                for (int s = 0; s <= i; s++)
                {
                    for (int e = 0; e < d; e++)
                    {
                        y[i][h * d + e] += scores[s] / total * v[s][kvHead * d + e];
                    }
                }
            }
        }

        return y.Select(r => Project(w, LlamaTensorNames.Attention(layer, "o_proj"), r)).ToArray();
    }

    /// <summary>
    /// Rotary embedding in place on <paramref name="heads"/> heads of size <paramref name="d"/>: pair j of each head
    /// (dimensions 2j and 2j + 1 when <paramref name="interleaved"/>, else j and j + D/2) is rotated by the angle
    /// position · θ^(−2j/D).
    /// </summary>
    public static void Rotate(double[] x, int heads, int d, long position, double theta, bool interleaved)
    {
        ArgumentNullException.ThrowIfNull(x);
        for (int h = 0; h < heads; h++)
        {
            for (int j = 0; j < d / 2; j++)
            {
                double angle = position * Math.Pow(theta, -2.0 * j / d);
                double cos = Math.Cos(angle), sin = Math.Sin(angle);
                int a = h * d + (interleaved ? 2 * j : j), b = h * d + (interleaved ? 2 * j + 1 : j + d / 2);
                double x0 = x[a], x1 = x[b];
                x[a] = x0 * cos - x1 * sin;
                x[b] = x0 * sin + x1 * cos;
            }
        }
    }

    /// <summary>down(silu(gate(x)) · up(x)).</summary>
    private static double[] GatedMlp(GptWeights w, int layer, double[] x)
    {
        var gate = Project(w, LlamaTensorNames.Mlp(layer, "gate_proj"), x);
        var up = Project(w, LlamaTensorNames.Mlp(layer, "up_proj"), x);
        for (int k = 0; k < gate.Length; k++)
        {
            gate[k] = Activate(w.Config.Activation, gate[k]) * up[k];
        }

        return Project(w, LlamaTensorNames.Mlp(layer, "down_proj"), gate);
    }

    /// <summary>W · x with W in nn.Linear layout [out, in].</summary>
    private static double[] Project(GptWeights w, string name, double[] x)
    {
        var weight = w[name];
        int rows = weight.Shape[0], cols = weight.Shape[1];
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double sum = 0;
            for (int k = 0; k < cols; k++)
            {
                sum += weight.Data[(long)r * cols + k] * x[k];
            }

            y[r] = sum;
        }

        return y;
    }

    /// <summary>x / √(mean(x²) + ε) · weight.</summary>
    private static double[] RmsNorm(GptWeights w, string name, double[] x)
    {
        double meanSquare = x.Sum(v => v * v) / x.Length;
        double inv = 1 / Math.Sqrt(meanSquare + w.Config.LayerNormEpsilon);
        var gain = w[name].Data;
        var y = new double[x.Length];
        for (int k = 0; k < x.Length; k++)
        {
            y[k] = x[k] * inv * gain[k];
        }

        return y;
    }

    private static double[][] Attention(GptWeights w, string p, double[][] x, long[] mask)
    {
        var c = w.Config;
        int t = x.Length, width = c.Width, d = c.HeadSize;
        var qkv = x.Select(r => Linear(w, p + "attn.c_attn", r)).ToArray();   // (T, 3C): q | k | v
        var y = new double[t][];
        for (int i = 0; i < t; i++)
        {
            y[i] = new double[width];
            for (int h = 0; h < c.Heads; h++)
            {
                var scores = new double[i + 1];
                double max = double.NegativeInfinity;
                for (int s = 0; s <= i; s++)                                   // causal: keys at or before the query
                {
                    if (mask[s] == 0)
                    {
                        continue;
                    }

                    double dot = 0;
                    for (int k = 0; k < d; k++)
                    {
                        dot += qkv[i][h * d + k] * qkv[s][width + h * d + k];
                    }

                    scores[s] = dot / Math.Sqrt(d);
                    max = Math.Max(max, scores[s]);
                }

                if (double.IsNegativeInfinity(max))
                {
                    continue;                                                  // nothing to attend to: undefined row
                }

                double total = 0;
                for (int s = 0; s <= i; s++)
                {
                    scores[s] = mask[s] == 0 ? 0 : Math.Exp(scores[s] - max);
                    total += scores[s];
                }

                for (int s = 0; s <= i; s++)
                {
                    for (int k = 0; k < d; k++)
                    {
                        y[i][h * d + k] += scores[s] / total * qkv[s][2 * width + h * d + k];
                    }
                }
            }
        }

        return y.Select(r => Linear(w, p + "attn.c_proj", r)).ToArray();
    }

    private static double[] Mlp(GptWeights w, string p, double[] x)
    {
        var hidden = Linear(w, p + "mlp.c_fc", x);
        for (int k = 0; k < hidden.Length; k++)
        {
            hidden[k] = Activate(w.Config.Activation, hidden[k]);
        }

        return Linear(w, p + "mlp.c_proj", hidden);
    }

    /// <summary>The activation in double precision.</summary>
    public static double Activate(Activation activation, double x) => activation switch
    {
        Activation.GeluNew => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
        Activation.Gelu => 0.5 * x * (1 + Erf(x / Math.Sqrt(2))),
        Activation.Relu => Math.Max(0, x),
        Activation.Silu => x / (1 + Math.Exp(-x)),
        _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, "unknown activation"),
    };

    /// <summary>x @ W + b with W in Conv1D layout [in, out].</summary>
    private static double[] Linear(GptWeights w, string name, double[] x)
    {
        var weight = w[name + ".weight"];
        int rows = weight.Shape[0], cols = weight.Shape[1];
        var y = new double[cols];
        if (w.Config.Bias)
        {
            var bias = w[name + ".bias"].Data;
            for (int j = 0; j < cols; j++)
            {
                y[j] = bias[j];
            }
        }

        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < cols; j++)
            {
                y[j] += x[i] * weight.Data[(long)i * cols + j];
            }
        }

        return y;
    }

    private static double[] LayerNorm(GptWeights w, string name, double[] x)
    {
        double mean = x.Average();
        double variance = x.Sum(v => (v - mean) * (v - mean)) / x.Length;
        double inv = 1 / Math.Sqrt(variance + w.Config.LayerNormEpsilon);
        var gain = w[name + ".weight"].Data;
        var bias = w.Config.Bias ? w[name + ".bias"].Data : null;
        var y = new double[x.Length];
        for (int k = 0; k < x.Length; k++)
        {
            y[k] = (x[k] - mean) * inv * gain[k] + (bias?[k] ?? 0);
        }

        return y;
    }

    private static void Accumulate(double[] x, double[] add)
    {
        for (int k = 0; k < x.Length; k++)
        {
            x[k] += add[k];
        }
    }

    private static void CheckIndex(long value, int limit, string what)
    {
        if (value < 0 || value >= limit)
        {
            throw new ArgumentOutOfRangeException(what, value, $"{what} {value} is outside [0, {limit}).");
        }
    }

    /// <summary>The error function to about 1e-14: Taylor series near zero, continued fraction for erfc beyond.</summary>
    public static double Erf(double x)
    {
        double a = Math.Abs(x);
        if (a < 2.5)
        {
            // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
            double term = a, sum = a, x2 = a * a;
            for (int n = 1; n < 100 && Math.Abs(term) > 1e-17 * Math.Abs(sum); n++)
            {
                term *= -x2 / n;
                sum += term / (2 * n + 1);
            }

            return Math.CopySign(2 / Math.Sqrt(Math.PI) * sum, x);
        }

        if (a > 7)
        {
            return Math.CopySign(1, x);
        }

        // erfc(a) = exp(-a^2)/sqrt(pi) * 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + ...))))), evaluated from the tail.
        double f = a;
        for (int k = 80; k >= 1; k--)
        {
            f = a + k / 2.0 / f;
        }

        double erfc = Math.Exp(-a * a) / Math.Sqrt(Math.PI) / f;
        return Math.CopySign(1 - erfc, x);
    }
}

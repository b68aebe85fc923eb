using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Exporter.Reference;

// Shapes: B batch, T tokens, C width, H heads, D head size, F feed-forward width, V vocabulary.

/// <summary>
/// The ground truth: a plain-loop forward pass with double accumulation, written to be read, not to be fast.
/// Exported graphs are tested against it.
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

    private static float[][] Row(GptWeights w, long[] ids, long[] mask, long[] pos)
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

        var head = w.Head;
        var logits = new float[t][];
        for (int i = 0; i < t; i++)
        {
            var h = LayerNorm(w, TensorNames.LnF, x[i]);
            logits[i] = new float[c.VocabSize];
            for (int v = 0; v < c.VocabSize; v++)
            {
                double sum = 0;
                for (int k = 0; k < c.Width; k++)
                {
                    sum += h[k] * head.Data[(long)v * c.Width + k];
                }

                logits[i][v] = (float)sum;
            }
        }

        return logits;
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

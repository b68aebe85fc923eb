using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Exporter.Checkpoints;

/// <summary>
/// Moves Llama weights between the two rotary pairings. Meta's checkpoints (and llama2.c's) rotate the pairs
/// (2j, 2j + 1) of each head; Hugging Face's Llama rotates (j, j + D/2) ("rotate half"), and its conversion script
/// permutes the rows of q_proj and k_proj to match: within each head, row 2j + t moves to row t · D/2 + j
/// (<c>w.view(heads, D/2, 2, in).transpose(1, 2).reshape(out, in)</c>). The network computes the same thing after
/// the permutation: only which rows form a pair changed, and the attention scores q·k are sums over all of them.
/// </summary>
public static class LlamaRotaryLayout
{
    /// <summary>The same model with q_proj and k_proj rows in Hugging Face's order (<see cref="GptConfig.RotaryInterleaved"/> false).</summary>
    public static GptWeights ToHalves(GptWeights weights) => Convert(weights, toHalves: true);

    /// <summary>The same model with q_proj and k_proj rows in Meta's interleaved order (<see cref="GptConfig.RotaryInterleaved"/> true).</summary>
    public static GptWeights ToInterleaved(GptWeights weights) => Convert(weights, toHalves: false);

    private static GptWeights Convert(GptWeights weights, bool toHalves)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var c = weights.Config;
        if (c.Family != ModelFamily.Llama)
        {
            throw new OnnxGptException($"rotary layout: only Llama-family weights have rotary pairs; these are {c.Family}.");
        }

        if (c.RotaryInterleaved != toHalves)
        {
            return weights;                                                     // already in the layout asked for
        }

        var tensors = weights.Names.ToDictionary(n => n, n => weights[n], StringComparer.Ordinal);
        for (int i = 0; i < c.Layers; i++)
        {
            foreach (var (which, heads) in new[] { ("q_proj", c.Heads), ("k_proj", c.KvHeads) })
            {
                string name = LlamaTensorNames.Attention(i, which);
                tensors[name] = PermuteRows(tensors[name], heads, c.HeadSize, toHalves);
            }
        }

        return new GptWeights(c with { RotaryInterleaved = !toHalves }, tensors, $"{c.Family} weights, rotary pairs {(toHalves ? "(j, j + D/2)" : "(2j, 2j + 1)")}");
    }

    /// <summary>Within each head of size d: interleaved row 2j + t ↔ halves row t · d/2 + j.</summary>
    private static Tensor PermuteRows(Tensor w, int heads, int d, bool toHalves)
    {
        int cols = w.Shape[1];
        var result = new float[w.Data.Length];
        for (int h = 0; h < heads; h++)
        {
            for (int j = 0; j < d / 2; j++)
            {
                for (int t = 0; t < 2; t++)
                {
                    int interleaved = h * d + 2 * j + t, halves = h * d + t * (d / 2) + j;
                    int from = toHalves ? interleaved : halves, to = toHalves ? halves : interleaved;
                    Array.Copy(w.Data, (long)from * cols, result, (long)to * cols, cols);
                }
            }
        }

        return new Tensor(w.Shape, result);
    }
}

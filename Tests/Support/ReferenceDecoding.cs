using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Reference;
using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Tests.Support;

/// <summary>
/// Plain, obviously correct decoding over the reference forward pass, recomputing the whole sequence every step (no
/// cache, no heaps, no reuse): Hugging Face's beam search as transformers 4.30 writes it (the version ONNX Runtime's
/// BeamSearch operator reproduces), and the logit rules of the sampler, for the runtime's results to be compared with.
/// </summary>
internal static class ReferenceDecoding
{
    /// <summary>One finished hypothesis: generated tokens (with the end token if one finished it) and its score.</summary>
    public sealed record Hypothesis(int[] Tokens, double Score, bool Ended);

    /// <summary>The reference's next-token logits after <paramref name="sequence"/>, in double.</summary>
    public static double[] NextLogits(GptWeights weights, IReadOnlyList<int> sequence) =>
        [.. ReferenceGpt.Logits(weights, [sequence.Select(t => (long)t).ToArray()])[0][^1].Select(x => (double)x)];

    /// <summary>log softmax in double.</summary>
    public static double[] LogSoftmax(double[] logits)
    {
        double max = logits.Max();
        double lse = max + Math.Log(logits.Sum(x => Math.Exp(x - max)));
        return [.. logits.Select(x => x - lse)];
    }

    /// <summary>
    /// The logit rules in the sampler's order, each written as its definition reads: Hugging Face's repetition penalty
    /// over every previous token, OpenAI's penalties over the generated ones (count[j] · frequency + (count[j] &gt; 0) ·
    /// presence), the logit bias, and the no-repeat n-gram ban.
    /// </summary>
    public static double[] Process(double[] scores, IReadOnlyList<int> sequence, int promptLength, GenerationOptions options)
    {
        var original = (double[])scores.Clone();
        var result = (double[])scores.Clone();
        if (options.RepetitionPenalty != 1)
        {
            foreach (int t in sequence.Distinct())
            {
                result[t] = original[t] < 0 ? original[t] * options.RepetitionPenalty : original[t] / options.RepetitionPenalty;
            }
        }

        var generated = sequence.Skip(promptLength).ToList();
        foreach (int t in generated.Distinct())
        {
            int count = generated.Count(x => x == t);
            result[t] -= count * options.FrequencyPenalty + (count > 0 ? options.PresencePenalty : 0);
        }

        foreach (var (t, bias) in options.LogitBias)
        {
            result[t] += bias;
        }

        int n = options.NoRepeatNgramSize;
        if (n > 0 && sequence.Count >= n - 1)
        {
            var tail = sequence.Skip(sequence.Count - (n - 1)).ToList();
            for (int start = 0; start + n <= sequence.Count; start++)
            {
                if (sequence.Skip(start).Take(n - 1).SequenceEqual(tail))
                {
                    result[sequence[start + n - 1]] = double.NegativeInfinity;
                }
            }
        }

        return result;
    }

    /// <summary>
    /// Beam search as Hugging Face 4.30 runs it for one prompt: every step each beam's log-softmax, processed, plus
    /// its score; the best (1 + end tokens)·N candidates over all beams in order (ties: lower beam, then lower token);
    /// an end token among the first N finishes a hypothesis scored sum / (its length without the end token) ^ penalty;
    /// the others continue until N; done by early stopping's rule; the live beams join at the last step.
    /// </summary>
    /// <param name="mask">A constraint's mask, or null: given a beam's generated tokens and its processed scores, sets
    /// those of the tokens that may not come next to −∞ (a beam left with fewer allowed tokens continues with them, and
    /// fewer beams go on when fewer candidates remain).</param>
    public static List<Hypothesis> BeamSearch(GptWeights weights, int[] prompt, GenerationOptions options, int[] endTokens,
        Action<int[], double[]>? mask = null)
    {
        int n = options.NumBeams;
        int context = weights.Config.ContextLength;
        int maxLength = Math.Min(context, prompt.Length + options.MaxNewTokens);
        var beams = new List<(List<int> Seq, double Score)> { (prompt.ToList(), 0.0) };
        var finished = new List<(double Score, int[] Tokens, bool Ended, int Order)>();
        int added = 0;
        int take = Math.Max(2, 1 + endTokens.Length) * n;
        // The lengths the scores divide by: transformers' legacy convention (the whole sequence, an ended one without
        // its end token) or its current one (generated tokens only, an ended one with its end token, the stopping
        // rule's current length after this step's token).
        bool generatedOnly = options.BeamLength == BeamLength.Generated;
        int p = generatedOnly ? prompt.Length : 0;

        void Add(double score, int[] tokens, bool ended)
        {
            double worst = finished.Count == 0 ? 1e9 : finished.Min(h => h.Score);
            if (finished.Count < n || score > worst)
            {
                finished.Add((score, tokens, ended, added++));
                if (finished.Count > n)
                {
                    finished.Remove(finished.OrderBy(h => h.Score).First());
                }
            }
        }

        bool done = false;
        for (int step = 0; step < options.MaxNewTokens && beams[0].Seq.Count < context; step++)
        {
            var candidates = new List<(double Score, int Beam, int Token)>();
            for (int b = 0; b < beams.Count; b++)
            {
                var lp = Process(LogSoftmax(NextLogits(weights, beams[b].Seq)), beams[b].Seq, prompt.Length, options);
                mask?.Invoke([.. beams[b].Seq.Skip(prompt.Length)], lp);
                for (int v = 0; v < lp.Length; v++)
                {
                    if (!double.IsNegativeInfinity(lp[v]))
                    {
                        candidates.Add((beams[b].Score + lp[v], b, v));
                    }
                }
            }

            var top = candidates.OrderByDescending(c => c.Score).ThenBy(c => c.Beam).ThenBy(c => c.Token).Take(take).ToList();
            var next = new List<(List<int> Seq, double Score)>();
            for (int rank = 0; rank < top.Count && next.Count < n; rank++)
            {
                var c = top[rank];
                var parent = beams[c.Beam].Seq;
                if (endTokens.Contains(c.Token))
                {
                    if (rank < n)
                    {
                        Add(c.Score / Math.Pow(parent.Count + (generatedOnly ? 1 : 0) - p, options.LengthPenalty), [.. parent.Skip(prompt.Length), c.Token], ended: true);
                    }
                }
                else
                {
                    next.Add(([.. parent, c.Token], c.Score));
                }
            }

            int currentLength = beams[0].Seq.Count + (generatedOnly ? 1 : 0) - p;
            if (next.Count == 0)
            {
                done = true;   // every candidate ended
            }
            else if (finished.Count >= n)
            {
                double worst = finished.Min(h => h.Score), best = top[0].Score, lp = options.LengthPenalty;
                done = options.EarlyStopping switch
                {
                    BeamEarlyStopping.Early => true,
                    BeamEarlyStopping.Never when lp > 0 => worst >= best / Math.Pow(maxLength - p, lp),
                    _ => worst >= best / Math.Pow(currentLength, lp),
                };
            }

            if (done)
            {
                break;
            }

            beams = next;
        }

        if (!done)
        {
            foreach (var (seq, score) in beams)
            {
                Add(score / Math.Pow(seq.Count - p, options.LengthPenalty), [.. seq.Skip(prompt.Length)], ended: false);
            }
        }

        return [.. finished.OrderByDescending(h => h.Score).ThenByDescending(h => h.Order).Take(options.NumReturnSequences)
            .Select(h => new Hypothesis(h.Tokens, h.Score, h.Ended))];
    }
}

using System.Numerics;

namespace OnnxGpt.Training;

/// <summary>Generates tokens from a <see cref="TrainableGpt{T}"/> with its own forward pass (no ONNX), to see what a model learned.</summary>
public static class TextSampler
{
    /// <summary>
    /// Appends <paramref name="count"/> tokens to <paramref name="prompt"/>: greedy when <paramref name="temperature"/>
    /// is 0, else sampled from softmax(logits / temperature). The window is cropped to the model's context.
    /// Recomputes the whole window per token: fine for a sample, not for serving.
    /// </summary>
    public static int[] Generate<T>(TrainableGpt<T> model, IReadOnlyList<int> prompt, int count, double temperature, TrainingRandom random)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(random);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegative(temperature);
        if (prompt.Count == 0)
        {
            throw new ArgumentException("the prompt needs at least one token.", nameof(prompt));
        }

        var tokens = new List<int>(prompt);
        int v = model.Config.VocabSize;
        var probs = new double[v];
        for (int i = 0; i < count; i++)
        {
            int window = Math.Min(tokens.Count, model.Config.ContextLength);
            var input = tokens.GetRange(tokens.Count - window, window).ToArray();
            model.Forward(input, default, 1, window);
            var logits = model.Logits.Slice((window - 1) * v, v);
            int next = 0;
            if (temperature == 0)
            {
                for (int j = 1; j < v; j++)
                {
                    if (logits[j] > logits[next])
                    {
                        next = j;
                    }
                }
            }
            else
            {
                double max = double.NegativeInfinity;
                for (int j = 0; j < v; j++)
                {
                    max = Math.Max(max, double.CreateChecked(logits[j]));
                }

                double sum = 0;
                for (int j = 0; j < v; j++)
                {
                    probs[j] = Math.Exp((double.CreateChecked(logits[j]) - max) / temperature);
                    sum += probs[j];
                }

                double u = random.NextDouble() * sum, acc = 0;
                next = v - 1;
                for (int j = 0; j < v; j++)
                {
                    acc += probs[j];
                    if (u < acc)
                    {
                        next = j;
                        break;
                    }
                }
            }

            tokens.Add(next);
        }

        return tokens.ToArray();
    }
}

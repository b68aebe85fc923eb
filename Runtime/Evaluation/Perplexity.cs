using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;

namespace OnnxGpt.Runtime.Evaluation;

/// <summary>
/// Mean negative log-likelihood and perplexity of a token sequence. Text longer than the context is scored with a
/// sliding window, as Hugging Face's perplexity guide does: windows of the context length start every
/// <c>stride</c> tokens, and each window scores only the tokens no earlier window scored, so every token is scored
/// once and (after the first window) with at least <c>context - stride</c> tokens before it. A window's last logits
/// score the token just after it, so with a stride of the context length every token but the first is scored from
/// disjoint windows of <c>context</c> inputs, exactly as a trainer evaluates (inputs <c>x[i, i+C)</c>, targets
/// <c>x[i+1, i+C+1)</c>).
/// </summary>
public static class Perplexity
{
    /// <param name="model">The model.</param>
    /// <param name="tokens">At least two token ids; the first is context only, every later one is scored.</param>
    /// <param name="stride">Tokens between window starts; default half the context length.</param>
    /// <param name="cancellationToken">Checked between windows.</param>
    /// <param name="progress">Told the tokens scored so far after each window (of <c>tokens.Count - 1</c> in all).</param>
    /// <exception cref="ArgumentException">Fewer than two tokens, or a stride outside [1, context].</exception>
    /// <exception cref="OnnxGptException">A token id is outside the vocabulary.</exception>
    public static PerplexityResult Evaluate(GptModel model, IReadOnlyList<int> tokens, int? stride = null, CancellationToken cancellationToken = default,
        IProgress<long>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokens);
        if (tokens.Count < 2)
        {
            throw new ArgumentException($"scoring needs at least two tokens (the first is only context); found {tokens.Count}.", nameof(tokens));
        }

        int context = model.Config.ContextLength;
        int step = stride ?? Math.Max(1, context / 2);
        if (step < 1 || step > context)
        {
            throw new ArgumentOutOfRangeException(nameof(stride), step, $"the stride must be between 1 and the context length {context}.");
        }

        var settings = new GeneratorOptions { DecodeText = false, StopAtEndOfSequence = false };
        using var generator = model.CreateGenerator(new GenerationOptions { DoSample = false, MaxNewTokens = 0 }, settings);
        double total = 0;
        int scored = 0, windows = 0, scoredUpTo = 1;   // tokens [1, scoredUpTo) are scored
        int begin = 0;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int end = Math.Min(begin + context, tokens.Count);
            var window = new int[end - begin];
            for (int i = 0; i < window.Length; i++)
            {
                window[i] = tokens[begin + i];
            }

            int first = scoredUpTo;     // the first token this window scores
            generator.RewindTo(0);
            generator.Append(window);
            generator.Score((_, index, logits) =>
            {
                // The logits at sequence index j predict token begin + j + 1.
                int target = begin + index + 1;
                if (target >= first && target <= end && target < tokens.Count)
                {
                    total += NegativeLogLikelihood(logits, tokens[target]);
                    scored++;
                }
            });
            windows++;
            progress?.Report(scored);
            scoredUpTo = Math.Min(end + 1, tokens.Count);
            if (scoredUpTo == tokens.Count)
            {
                break;
            }

            begin += step;
        }

        return new PerplexityResult(total / scored, scored, windows);
    }

    /// <summary>
    /// Each token's log-probability given the tokens before it, under the raw model distribution, with the
    /// <paramref name="top"/> most likely tokens at its position: how a text is scored through an OpenAI-compatible
    /// server (<c>echo</c> with <c>logprobs</c>). The first token has nothing before it: its entry is null. The
    /// negated mean of the others is <see cref="Evaluate"/>'s mean NLL for the same tokens.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="tokens">The tokens, fewer than the context length.</param>
    /// <param name="top">Alternatives per position, 0 to <see cref="GenerationOptions.MaxTopLogProbs"/>.</param>
    /// <exception cref="OnnxGptException">A token id is outside the vocabulary, or the tokens do not fit the context.</exception>
    public static TokenLogProbs?[] TokenLogProbs(GptModel model, IReadOnlyList<int> tokens, int top)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentOutOfRangeException.ThrowIfNegative(top);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(top, GenerationOptions.MaxTopLogProbs);
        var result = new TokenLogProbs?[tokens.Count];
        if (tokens.Count < 2)
        {
            return result;
        }

        var settings = new GeneratorOptions { DecodeText = false, StopAtEndOfSequence = false };
        using var generator = model.CreateGenerator(new GenerationOptions { DoSample = false, MaxNewTokens = 0 }, settings);
        generator.Append([.. tokens]);
        generator.Score((_, index, logits) =>
        {
            if (index + 1 < tokens.Count)
            {
                int target = tokens[index + 1];
                result[index + 1] = Sequence.Record(logits, target, double.NaN, top) with { ProcessedLogProb = -NegativeLogLikelihood(logits, target) };
            }
        });
        return result;
    }

    /// <summary>-log softmax(logits)[target], in double precision.</summary>
    internal static double NegativeLogLikelihood(ReadOnlySpan<float> logits, int target)
    {
        float max = float.NegativeInfinity;
        foreach (var x in logits)
        {
            max = Math.Max(max, x);
        }

        double sum = 0;
        foreach (var x in logits)
        {
            sum += Math.Exp(x - max);
        }

        return Math.Log(sum) - (logits[target] - max);
    }
}

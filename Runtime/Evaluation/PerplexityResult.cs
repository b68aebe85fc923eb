namespace OnnxGpt.Runtime.Evaluation;

/// <summary>How well a model predicts a text: see <see cref="Perplexity.Evaluate"/>.</summary>
/// <param name="MeanNll">Mean negative log-likelihood of the scored tokens, in nats per token.</param>
/// <param name="Tokens">Tokens scored: every token after the first.</param>
/// <param name="Windows">Forward passes over context-length windows.</param>
public sealed record PerplexityResult(double MeanNll, int Tokens, int Windows)
{
    /// <summary>exp(mean NLL).</summary>
    public double Perplexity => Math.Exp(MeanNll);

    /// <summary>Mean NLL in bits per token.</summary>
    public double BitsPerToken => MeanNll / Math.Log(2);
}

namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// The log-probabilities of one generated token (see <see cref="GenerationOptions.TopLogProbs"/>), in nats.
/// <see cref="LogProb"/> and <see cref="Top"/> are the raw model's: log-softmax of the logits the model produced,
/// before any penalty, bias, logits processor, temperature, top-k or top-p, which is what OpenAI's API returns.
/// <see cref="ProcessedLogProb"/> is the probability the sampler actually gave the token after all of them.
/// </summary>
/// <param name="TokenId">The token picked.</param>
/// <param name="LogProb">log p(token) under the raw model distribution.</param>
/// <param name="ProcessedLogProb">
/// log p(token) under the distribution it was drawn from (for greedy decoding, the log-softmax of the penalised logits;
/// for beam search, the token's processed log-probability that its beam's score added).
/// </param>
/// <param name="Top">The most likely tokens under the raw model distribution, most likely first (as many as <see cref="GenerationOptions.TopLogProbs"/> asked).</param>
public sealed record TokenLogProbs(int TokenId, double LogProb, double ProcessedLogProb, IReadOnlyList<TokenLogProb> Top);

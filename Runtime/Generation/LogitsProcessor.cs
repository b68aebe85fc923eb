namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// Changes one sequence's next-token logits before the sampler sees them: a mask over the vocabulary for constrained
/// decoding (set a logit to <see cref="float.NegativeInfinity"/> to forbid its token), a bias, a grammar. Called on
/// the thread that decodes, once per generated token, with the sequence so far (prompt and generated tokens).
/// </summary>
/// <param name="tokens">The sequence's tokens so far.</param>
/// <param name="logits">Its logits for the next token, one per vocabulary entry, to change in place.</param>
public delegate void LogitsProcessor(ReadOnlySpan<int> tokens, Span<float> logits);

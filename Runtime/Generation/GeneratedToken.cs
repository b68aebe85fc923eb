using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Generation;

/// <summary>One token generated for one row of a batch, as streamed by <see cref="Generator.StreamAsync"/>.</summary>
/// <param name="Row">The row (0 for a single sequence).</param>
/// <param name="TokenId">The token id.</param>
/// <param name="Text">
/// The text this token completes: empty while a multi-byte character is still incomplete, for a stop token, or when
/// the model has no tokenizer; when the row finishes it also carries any text held back until then.
/// </param>
/// <param name="FinishReason">Why the row stopped with this token, or <see cref="Generation.FinishReason.None"/>.</param>
/// <param name="LogProbs">Its log-probabilities, when <see cref="GenerationOptions.TopLogProbs"/> asks for them; else null.</param>
public readonly record struct GeneratedToken(int Row, int TokenId, string Text, FinishReason FinishReason, TokenLogProbs? LogProbs = null);

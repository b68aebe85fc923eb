using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// How a <see cref="Generator"/> runs the model, as opposed to how it picks tokens (<see cref="GenerationOptions"/>).
/// </summary>
public sealed record GeneratorOptions
{
    /// <summary>
    /// Keep keys and values between steps (the default). False recomputes the whole sequence every step: the same
    /// tokens, much slower; for benchmarks and tests. A graph without past inputs always runs this way.
    /// </summary>
    public bool UseKvCache { get; init; } = true;

    /// <summary>
    /// Most tokens fed to the model in one step (per row) when the cache is on: a longer prompt goes in chunks, which
    /// bounds the memory of one step (its logits and attention scores). 0, the default, picks the chunk so that one
    /// step's logits stay under 64 MiB (batch × chunk × vocabulary floats), at least 16 tokens; with the fused graph,
    /// which computes logits for each row's last position only, so that its attention scores (batch × heads × chunk ×
    /// capacity floats) do, which usually takes the whole prompt in one step.
    /// </summary>
    public int PrefillChunkTokens { get; init; }

    /// <summary>What to do with a prompt longer than the context.</summary>
    public PromptTruncation Truncation { get; init; } = PromptTruncation.None;

    /// <summary>Stop a sequence when it produces the model's <c>eos_token_id</c> (the default).</summary>
    public bool StopAtEndOfSequence { get; init; } = true;

    /// <summary>
    /// Decode generated tokens to text with the model's tokenizer, when it has one (the default): streamed pieces,
    /// result text and stop strings need it. False keeps generation to token ids.
    /// </summary>
    public bool DecodeText { get; init; } = true;
}

using OnnxGpt.Runtime.Model;

namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// Speculative decoding (<see cref="GenerationOptions.Speculation"/>): a cheap draft proposes the next k tokens, the
/// model scores all k + 1 positions in one step over its cache, the longest prefix it agrees with is kept (plus the
/// token it picks where it first disagrees), and the cache is rewound past the rest. A single stream decodes faster
/// when the model's step is bound by reading its weights, since one read verifies several tokens. The output is the
/// model's own: token for token what plain greedy decoding gives, and with sampling the same distribution (the
/// accept/reject rule of Leviathan et al. and Chen et al.; the draws differ, so a seed gives other text than without).
/// <para>
/// Drafts: prompt lookup (<see cref="PromptLookup"/>: the tokens that followed the latest earlier occurrence of the
/// sequence's last n-gram, in the prompt or the text so far), tried first when both are set; and a draft model
/// (<see cref="DraftModel"/>) sharing the tokenizer, such as the same weights exported in int4 drafting for a float32
/// export. k is chosen per step (<see cref="DraftTokens"/> 0, the default) from the measured acceptance rate and the
/// measured costs of a draft token and of a verifying step, and can be 0 (plain decoding) where drafting does not pay.
/// </para>
/// A <see cref="Generator"/> speculates for a single sequence; a <see cref="Batching.BatchEngine"/> speculates for a
/// request while it is the only one decoding, and decodes it plainly beside others (batching already shares the weight
/// reads, and the fused graph's attention takes several new tokens after a past only for a row run alone).
/// </summary>
public sealed record SpeculativeDecoding
{
    /// <summary>Most draft tokens one step may verify (the step's limit of 16 positions, less the last token).</summary>
    public const int MostDraftTokens = 15;

    /// <summary>
    /// A draft model: its vocabulary and tokenizer must be the model's (checked when generation starts). Not owned:
    /// dispose it after the generators that use it. Null: none.
    /// </summary>
    public GptModel? DraftModel { get; init; }

    /// <summary>
    /// Prompt lookup: match the sequence's last n tokens, n from this down to 1, against its earlier tokens, and
    /// propose what followed the latest match. 0 (the default) turns it off; 2–4 are usual.
    /// </summary>
    public int PromptLookup { get; init; }

    /// <summary>Draft tokens per step: 0 (the default) adapts k to the acceptance rate and the measured costs; otherwise a fixed k.</summary>
    public int DraftTokens { get; init; }

    /// <summary>The largest k the adaptive choice may take (1 to <see cref="MostDraftTokens"/>). Default 8.</summary>
    public int MaxDraftTokens { get; init; } = 8;

    /// <summary>True when a draft is configured.</summary>
    public bool IsEnabled => DraftModel is not null || PromptLookup > 0;

    /// <summary>Checks the limits.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A limit is out of range; the message names it.</exception>
    public void Validate()
    {
        if (PromptLookup is < 0 or > 64)
        {
            throw new ArgumentOutOfRangeException(nameof(PromptLookup), PromptLookup, $"{nameof(PromptLookup)} must be 0 (off) to 64 tokens; found {PromptLookup}.");
        }

        if (DraftTokens is < 0 or > MostDraftTokens)
        {
            throw new ArgumentOutOfRangeException(nameof(DraftTokens), DraftTokens, $"{nameof(DraftTokens)} must be 0 (adaptive) to {MostDraftTokens}; found {DraftTokens}.");
        }

        if (MaxDraftTokens is < 1 or > MostDraftTokens)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxDraftTokens), MaxDraftTokens, $"{nameof(MaxDraftTokens)} must be 1 to {MostDraftTokens}; found {MaxDraftTokens}.");
        }
    }
}

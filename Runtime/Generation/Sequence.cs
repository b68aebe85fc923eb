using System.Runtime.CompilerServices;
using OnnxGpt.Runtime.Constraints;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// One sequence: its tokens, how many of them the cache holds, the generation under way (prompt length, tokens
/// generated, why it stopped), its sampler and stop rules, and its text decoder. It is the only place a sequence's
/// lengths live: a decoder step reads <see cref="Length"/> and <see cref="Cached"/>, feeds the tokens in between and
/// moves <see cref="Cached"/> on; a scheduler (<see cref="Generator"/>, the batching engine) samples from the step's
/// logits with <see cref="Next"/>. Knows nothing of cache layouts. Not thread-safe.
/// </summary>
internal sealed class Sequence
{
    private readonly int _eos;
    private int[] _moreEnds = [];
    private int[] _tokens = [];
    private Sampler _sampler;
    private int[] _stopIds;
    private float[]? _rawLogits;                 // the model's logits before the processor, when log-probabilities are recorded
    private List<TokenLogProbs>? _logProbs;      // per generated token, when recorded
    private ConstraintState.Checkpoint _beforePicks;
    private bool _picking;

    /// <param name="options">How tokens are picked and when to stop.</param>
    /// <param name="endOfSequence">The token that ends the sequence, or −1 for none.</param>
    /// <param name="tokenizer">Decodes the generated text (stop strings need it); null: token ids only.</param>
    public Sequence(GenerationOptions options, int endOfSequence, ITextTokenizer? tokenizer)
    {
        _sampler = new Sampler(options);
        Options = options;
        _stopIds = [.. options.StopTokenIds];
        _eos = endOfSequence;
        if (tokenizer is not null)
        {
            Text = new RowText(tokenizer, options.StopStrings, Math.Min(options.MaxNewTokens, 4096));
        }
    }

    /// <summary>
    /// Tokens besides the end-of-sequence token that end the sequence as it does (<see cref="FinishReason.EndOfSequence"/>,
    /// left out of the text): the other ids of a model whose files list several (<see cref="Model.GptModel.EndTokenIds"/>).
    /// </summary>
    public IReadOnlyList<int> MoreEndTokens
    {
        get => _moreEnds;
        init => _moreEnds = [.. value];
    }

    /// <summary>How tokens are picked (see <see cref="SetOptions"/>).</summary>
    public GenerationOptions Options { get; private set; }

    /// <summary>The seed the sampler uses.</summary>
    public ulong Seed => _sampler.Seed;

    /// <summary>The sampler's random state now (see <see cref="Sampler.GetRandomState"/>).</summary>
    public ulong[] RandomState => _sampler.GetRandomState();

    /// <summary>Continues the sampler's random stream from a saved state (see <see cref="Sampler.RestoreRandomState"/>).</summary>
    public void RestoreRandomState(IReadOnlyList<ulong> state) => _sampler.RestoreRandomState(state);

    /// <summary>Tokens in the sequence: prompt and generated.</summary>
    public int Length { get; private set; }

    /// <summary>
    /// Tokens whose keys and values the cache holds (the first <see cref="Cached"/> of <see cref="Tokens"/>). Only the
    /// decoder step that owns the cache moves it forward or back (the sequence clamps it when it is rewound).
    /// </summary>
    public int Cached { get; set; }

    /// <summary>Tokens not yet fed to the model.</summary>
    public int Pending => Length - Cached;

    /// <summary>How many of the tokens came before the current generation (the prompt of the last append).</summary>
    public int PromptLength { get; private set; }

    /// <summary>Tokens generated since the last append.</summary>
    public int NewTokens { get; private set; }

    /// <summary>The token the last <see cref="Next"/> produced, or −1.</summary>
    public int LastToken { get; private set; } = -1;

    /// <summary>Why the generation stopped, or <see cref="FinishReason.None"/> while it goes on.</summary>
    public FinishReason FinishReason { get; private set; }

    /// <summary>The generated text, with a tokenizer.</summary>
    public RowText? Text { get; }

    /// <summary>Changes the logits before each sample (constrained decoding); null: none.</summary>
    public LogitsProcessor? LogitsProcessor { get; set; }

    /// <summary>
    /// The output constraint the generation follows (null: free text). After the logits processor, it masks every
    /// token that would break it; it takes each token; and once the text is complete and nothing may follow, the
    /// sequence finishes with <see cref="FinishReason.ConstraintComplete"/>. Reset at each <see cref="Begin"/>.
    /// </summary>
    public ConstraintState? Constraint { get; set; }

    /// <summary>When the current generation began (<see cref="System.Diagnostics.Stopwatch"/> ticks), its first and its last token.</summary>
    public long StartedAt { get; private set; }

    /// <inheritdoc cref="StartedAt"/>
    public long FirstTokenAt { get; private set; }

    /// <inheritdoc cref="StartedAt"/>
    public long LastTokenAt { get; private set; }

    /// <summary>The log-probabilities of the tokens generated since the prompt (null unless <see cref="GenerationOptions.TopLogProbs"/> is set).</summary>
    public IReadOnlyList<TokenLogProbs>? LogProbs => _logProbs;

    /// <summary>The log-probabilities of the token the last <see cref="Next"/> produced (null unless recorded).</summary>
    public TokenLogProbs? LastLogProbs => _logProbs is { Count: > 0 } list && LastToken >= 0 ? list[^1] : null;

    /// <summary>The tokens: prompt followed by everything generated.</summary>
    public ReadOnlySpan<int> Tokens => _tokens.AsSpan(0, Length);

    /// <summary>Makes room for <paramref name="capacity"/> tokens, so generating up to there allocates nothing.</summary>
    public void Reserve(int capacity)
    {
        if (capacity > _tokens.Length)
        {
            Array.Resize(ref _tokens, capacity);
        }
    }

    /// <summary>Appends prompt tokens (call <see cref="Begin"/> once the append is complete).</summary>
    public void Append(ReadOnlySpan<int> tokens)
    {
        Reserve(Length + tokens.Length);
        tokens.CopyTo(_tokens.AsSpan(Length));
        Length += tokens.Length;
    }

    /// <summary>A generation starts after the tokens appended so far: they are its prompt.</summary>
    /// <param name="now">The time (Stopwatch ticks).</param>
    /// <param name="full">The sequence has no room left in the context.</param>
    public void Begin(long now, bool full)
    {
        PromptLength = Length;
        NewTokens = 0;
        LastToken = -1;
        StartedAt = now;
        FirstTokenAt = LastTokenAt = 0;
        FinishReason = Options.MaxNewTokens == 0 ? FinishReason.MaxNewTokens : full ? FinishReason.ContextFull : FinishReason.None;
        Text?.Reset(Length > 0 ? _tokens[Length - 1] : -1);   // the text follows the prompt's last token
        Constraint?.Reset();
        _logProbs = Options.TopLogProbs is null ? null : new List<TokenLogProbs>(Math.Min(Options.MaxNewTokens, 4096));
    }

    /// <summary>
    /// Makes this sequence a copy of <paramref name="source"/>: its tokens, prompt, generation state, text and
    /// log-probabilities (a beam or a sample row taking another's place). <see cref="Cached"/> becomes
    /// <paramref name="cached"/>, the part of the cache that already holds the same tokens; the decoder step's
    /// <see cref="DecoderStep.CopyRow"/> copies the rest.
    /// </summary>
    public void CopyFrom(Sequence source, int cached)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(cached);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cached, source.Cached);
        Reserve(source._tokens.Length);
        source.Tokens.CopyTo(_tokens);
        Length = source.Length;
        Cached = cached;
        PromptLength = source.PromptLength;
        NewTokens = source.NewTokens;
        LastToken = source.LastToken;
        FinishReason = source.FinishReason;
        (StartedAt, FirstTokenAt, LastTokenAt) = (source.StartedAt, source.FirstTokenAt, source.LastTokenAt);
        _logProbs = source._logProbs is null ? null : [.. source._logProbs];
        if (Text is not null && NewTokens == 0)
        {
            Text.Reset(PromptLength > 0 ? _tokens[PromptLength - 1] : -1);
        }
        else if (Text is not null)
        {
            FinishReason = Text.Replay(GeneratedText(), FinishReason);
        }

        ReplayConstraint();
    }

    /// <summary>
    /// Picks the next token from <paramref name="logits"/> (this sequence's row of the last step, which the logits
    /// processor may change in place), appends it and updates why the sequence stops.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Next(Span<float> logits, Span<float> scratch, long now)
    {
        bool record = _logProbs is not null, changed = LogitsProcessor is not null || Constraint is not null;
        if (record && changed)
        {
            _rawLogits ??= new float[logits.Length];
            logits.CopyTo(_rawLogits);   // the processor and the constraint change the logits in place; the raw ones are reported
        }

        LogitsProcessor?.Invoke(Tokens, logits);
        Constraint?.Apply(logits);
        int token = _sampler.Sample(logits, Tokens, PromptLength, scratch);
        if (record)
        {
            _logProbs!.Add(Record(changed ? _rawLogits : logits, token, _sampler.LastLogProb, Options.TopLogProbs!.Value));
        }

        Accept(token, now);
        return token;
    }

    /// <summary>The raw model log-probability of <paramref name="token"/> and the <paramref name="top"/> most likely tokens in <paramref name="logits"/>.</summary>
    internal static TokenLogProbs Record(ReadOnlySpan<float> logits, int token, double processed, int top)
    {
        double lse = LogSoftmax.LogSumExp(logits);
        var alternatives = new TokenLogProb[Math.Min(top, logits.Length)];
        if (alternatives.Length > 0)
        {
            Span<int> ids = stackalloc int[alternatives.Length];
            LogSoftmax.TopK(logits, ids);
            for (int i = 0; i < ids.Length; i++)
            {
                alternatives[i] = new TokenLogProb(ids[i], logits[ids[i]] - lse);
            }
        }

        return new TokenLogProbs(token, logits[token] - lse, processed, alternatives);
    }

    /// <summary>Appends a generated token and updates why the sequence stops.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Accept(int token, long now)
    {
        if (Length == _tokens.Length)
        {
            Reserve(Math.Max(16, 2 * Length));
        }

        _tokens[Length++] = token;
        NewTokens++;
        LastToken = token;
        if (FirstTokenAt == 0)
        {
            FirstTokenAt = now;
        }

        LastTokenAt = now;
        var reason = StopReason(token, NewTokens);
        if (Constraint is { } constraint && constraint.TryAdvance(token) && reason is FinishReason.None or FinishReason.MaxNewTokens && !constraint.CanContinue)
        {
            reason = FinishReason.ConstraintComplete;
        }

        FinishReason = Text is null ? reason : Text.Add(token, reason);
    }

    /// <summary>Draft tokens appended by <see cref="AppendDraft"/> and not yet withdrawn.</summary>
    public int DraftLength { get; private set; }

    /// <summary>
    /// Speculative decoding: appends a draft's proposed tokens after the sequence, so that the next step feeds them
    /// (with the last token) and returns logits at every position. They are not part of the generation (no counts,
    /// stop rules or text) until <see cref="WithdrawDraft"/> takes them back and <see cref="Accept"/> adds those the
    /// target agreed with.
    /// </summary>
    public void AppendDraft(ReadOnlySpan<int> draft)
    {
        if (DraftLength != 0)
        {
            throw new InvalidOperationException("a draft is already appended; withdraw it first.");
        }

        Append(draft);
        DraftLength = draft.Length;
    }

    /// <summary>
    /// Takes the draft back after the verifying step. <see cref="Cached"/> keeps counting the draft's positions until
    /// the accepted tokens are added (<see cref="Accept"/> writes each over the draft token it replaces) and the step
    /// that owns the cache applies its rewind rule, which keeps all but the last token; so a draft token that was
    /// accepted keeps its keys and values, and a rejected one is overwritten before it is read. The constraint goes
    /// back to where the picks found it (<see cref="Accept"/> advances it again, token by token).
    /// </summary>
    public void WithdrawDraft()
    {
        Length -= DraftLength;
        DraftLength = 0;
        if (_picking)
        {
            Constraint?.Restore(_beforePicks);
            _picking = false;
        }
    }

    /// <summary>
    /// The token the sequence would pick at <paramref name="position"/> (its tokens before it as the history) from the
    /// logits there, without appending it: the logits processor, the constraint's mask, then the sampler; with a
    /// draft token, the sampler's accept/reject step (<see cref="Sampler.Verify"/>), which returns the draft token
    /// when it is accepted. Picks run in order over a verifying step's positions: the constraint moves on with each
    /// (and back at <see cref="WithdrawDraft"/>).
    /// </summary>
    /// <param name="position">How many of <see cref="Tokens"/> come before the token to pick.</param>
    /// <param name="logits">The logits at that position (changed in place by the processor and the mask).</param>
    /// <param name="draftToken">The draft's token there, or −1 for none (a plain pick).</param>
    /// <param name="draftProbabilities">The draft's distribution there, or empty for a certain draft.</param>
    /// <param name="scratch">The sampler's scratch.</param>
    /// <param name="probabilities">V floats of working space.</param>
    /// <param name="ends">The token ends the generation (end of text, a stop token, a complete constraint): pick no further.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Pick(int position, Span<float> logits, int draftToken, ReadOnlySpan<float> draftProbabilities, Span<float> scratch, Span<float> probabilities, out bool ends)
    {
        var history = Tokens[..position];
        LogitsProcessor?.Invoke(history, logits);
        if (Constraint is { } constraint)
        {
            if (!_picking)
            {
                _beforePicks = constraint.Save();
                _picking = true;
            }

            constraint.Apply(logits);
        }

        int token = draftToken < 0
            ? _sampler.Sample(logits, history, PromptLength, scratch)
            : _sampler.Verify(logits, history, PromptLength, scratch, draftToken, draftProbabilities, probabilities);
        ends = token == _eos || Array.IndexOf(_moreEnds, token) >= 0 || Array.IndexOf(_stopIds, token) >= 0 || (Constraint is { } c && (!c.TryAdvance(token) || !c.CanContinue));
        return token;
    }

    /// <summary>Stops the generation for a reason outside the tokens (the context is full), releasing held-back text.</summary>
    public void Stop(FinishReason reason)
    {
        if (FinishReason == FinishReason.None)
        {
            FinishReason = reason;
            Text?.Finish();
        }
    }

    /// <summary>
    /// Keeps the first <paramref name="length"/> tokens. The generation's counts, stop state and text are rebuilt
    /// from what remains (a sequence cut before its stop token generates again); <see cref="Cached"/> is clamped, and
    /// the step that owns the cache applies its own rewind rule after this.
    /// </summary>
    public void RewindTo(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Length);
        bool lastGenerated = length > PromptLength;
        NewTokens = Math.Max(0, length - PromptLength);
        PromptLength = Math.Min(PromptLength, length);
        Length = length;
        Cached = Math.Min(Cached, length);
        LastToken = -1;
        if (_logProbs is not null && _logProbs.Count > NewTokens)
        {
            _logProbs.RemoveRange(NewTokens, _logProbs.Count - NewTokens);
        }

        FinishReason = length == 0 ? FinishReason.None
            : lastGenerated ? StopReason(_tokens[length - 1], NewTokens)
            : Options.MaxNewTokens == 0 ? FinishReason.MaxNewTokens
            : FinishReason.None;
        if (Text is not null)
        {
            FinishReason = Text.Replay(GeneratedText(), FinishReason);
        }

        ReplayConstraint();
    }

    /// <summary>The generated tokens since the prompt, again through the constraint (one it refuses leaves it unsatisfiable).</summary>
    private void ReplayConstraint()
    {
        if (Constraint is { } constraint)
        {
            constraint.Reset();
            foreach (int token in GeneratedText())
            {
                if (!constraint.TryAdvance(token))
                {
                    break;
                }
            }
        }
    }

    /// <summary>
    /// New options from the next token on: a fresh sampler (seeded afresh), stop tokens and max new tokens; stop
    /// strings from the next <see cref="Begin"/>.
    /// </summary>
    public void SetOptions(GenerationOptions options)
    {
        _sampler = new Sampler(options);
        _stopIds = [.. options.StopTokenIds];
        Options = options;
        Text?.UseStopStrings(options.StopStrings);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private FinishReason StopReason(int token, int newTokens)
    {
        if (token == _eos || (_moreEnds.Length > 0 && Array.IndexOf(_moreEnds, token) >= 0))
        {
            return FinishReason.EndOfSequence;
        }

        if (Array.IndexOf(_stopIds, token) >= 0)
        {
            return FinishReason.StopToken;
        }

        return newTokens >= Options.MaxNewTokens ? FinishReason.MaxNewTokens : FinishReason.None;
    }

    /// <summary>The generated tokens since the prompt, stop tokens left out: what the text is made of.</summary>
    private IEnumerable<int> GeneratedText()
    {
        for (int i = PromptLength; i < Length; i++)
        {
            int token = _tokens[i];
            if (token != _eos && Array.IndexOf(_stopIds, token) < 0 && Array.IndexOf(_moreEnds, token) < 0)
            {
                yield return token;
            }
        }
    }
}

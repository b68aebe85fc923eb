using System.Diagnostics;
using System.Runtime.CompilerServices;
using OnnxGpt.Runtime.Model;

namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// One sequence's speculative decoding, for either scheduler (<see cref="Generator"/>, the batching engine): a round
/// drafts k tokens (<see cref="PromptLookupDrafter"/> first, then <see cref="ModelDrafter"/>), appends them to the
/// sequence as a draft (<see cref="Sequence.AppendDraft"/>), runs the target's <see cref="DecoderStep"/> once on the
/// last token and the draft with an observer that keeps the logits of every position, then picks token after token
/// with the sequence's own logits processor, constraint and sampler (<see cref="Sequence.Pick"/>: argmax, or the
/// accept/reject step) until the first that differs from the draft or ends the generation, and withdraws the draft. The scheduler then accepts the picked tokens
/// (<see cref="Sequence.Accept"/>, which applies the stop rules token by token) and calls the step's
/// <see cref="DecoderStep.Rewind"/>, which keeps the cache of every accepted token: rewinding past a rejection only
/// changes a length. <see cref="DraftLength"/> chooses k. Allocates nothing per round.
/// </summary>
internal sealed class Speculator : IDisposable
{
    private readonly SpeculativeDecoding _options;
    private readonly PromptLookupDrafter? _lookup;
    private readonly ModelDrafter? _drafter;
    private readonly DraftLength _length;
    private readonly bool _sampling;
    private readonly int _vocab;
    private readonly float[] _logits;        // (k + 1, V): the target's logits at each fed position
    private readonly float[] _draftProbabilities;   // (k, V): a sampling draft model's distributions
    private readonly float[] _probabilities;
    private readonly int[] _draft = new int[SpeculativeDecoding.MostDraftTokens];
    private readonly int[] _picked = new int[SpeculativeDecoding.MostDraftTokens + 1];
    private readonly DecoderStep.LogitsObserver _observer;
    private int _observedRow;
    private int _firstIndex;
    private int _pickedCount;
    private long _rounds, _plain, _drafted, _accepted;
    private int _lastLength;

    /// <param name="target">The model that verifies.</param>
    /// <param name="options">The sequence's options (their <see cref="GenerationOptions.Speculation"/> is set).</param>
    /// <param name="capacity">Tokens the sequence may reach (the draft model's cache is sized for it).</param>
    public Speculator(GptModel target, GenerationOptions options, int capacity)
    {
        _options = options.Speculation ?? throw new ArgumentException("the options ask for no speculation.", nameof(options));
        _sampling = !options.IsGreedy;
        _vocab = target.Config.VocabSize;
        if (_options.PromptLookup > 0)
        {
            _lookup = new PromptLookupDrafter(_options.PromptLookup);
        }

        if (_options.DraftModel is { } draft)
        {
            ModelDrafter.CheckCompatible(target, draft);
            _drafter = new ModelDrafter(draft, options, capacity);
        }

        int most = _options.DraftTokens > 0 ? _options.DraftTokens : _options.MaxDraftTokens;
        _length = new DraftLength(_options.DraftTokens, most, _drafter is null ? 0 : 0.3);
        _logits = new float[(most + 1) * _vocab];
        _draftProbabilities = _drafter is not null && _sampling ? new float[most * _vocab] : [];
        _probabilities = new float[_vocab];
        _observer = Observe;
    }

    /// <summary>The tokens the last <see cref="Round"/> picked, in order: the accepted drafts, then the model's own.</summary>
    public ReadOnlySpan<int> Picked => _picked.AsSpan(0, _pickedCount);

    /// <summary>Positions the last round fed to the target (the last token and the drafts verified).</summary>
    public int Fed { get; private set; }

    /// <summary>What speculation did so far.</summary>
    public SpeculationStatistics Statistics => new(_rounds, _plain, _drafted, _accepted, _lastLength);

    /// <summary>
    /// One round for <paramref name="sequence"/> in row <paramref name="row"/> of <paramref name="step"/>, whose only
    /// pending token must be its last. Returns how many tokens it picked (see <see cref="Picked"/>); 0 when it drafted
    /// nothing (no match, no room, or k = 0 chosen): then the caller runs a plain step, and times it for
    /// <see cref="ObservePlainStep"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Round(DecoderStep step, int[] feed, int row, Sequence sequence, Span<float> scratch)
    {
        _pickedCount = 0;
        Fed = 0;
        int budget = Math.Min(sequence.Options.MaxNewTokens - sequence.NewTokens - 1, step.Capacity - sequence.Length - 1);
        int k = _length.Choose(Math.Min(budget, _logits.Length / _vocab - 1));
        if (k <= 0 || sequence.Pending != 1)
        {
            return 0;
        }

        long started = Stopwatch.GetTimestamp();
        int drafted = _lookup?.Propose(sequence.Tokens, k, _draft) ?? 0;
        bool certain = true;
        if (drafted == 0 && _drafter is not null)
        {
            drafted = _drafter.Propose(sequence.Tokens, k, _draft, _draftProbabilities, _sampling, scratch);
            started += _drafter.CatchUpTicks;   // the draft's one-off catch-up is not what its tokens cost
            certain = !_sampling;
        }

        if (drafted == 0)
        {
            return 0;
        }

        long draftedAt = Stopwatch.GetTimestamp();
        sequence.AppendDraft(_draft.AsSpan(0, drafted));
        feed.AsSpan().Clear();
        feed[row] = 1 + drafted;
        (_observedRow, _firstIndex) = (row, sequence.Cached);
        step.Run(feed, _observer);
        int fed = feed[row];
        long verifiedAt = Stopwatch.GetTimestamp();

        int accepted = 0;
        bool rejected = false;
        for (int i = 0; i < fed; i++)
        {
            int draftToken = i < drafted ? _draft[i] : -1;
            var q = certain || draftToken < 0 ? default : new ReadOnlySpan<float>(_draftProbabilities, i * _vocab, _vocab);
            int token = sequence.Pick(_firstIndex + 1 + i, _logits.AsSpan(i * _vocab, _vocab), draftToken, q, scratch, _probabilities, out bool ends);
            _picked[_pickedCount++] = token;
            if (token != draftToken)
            {
                rejected = draftToken >= 0;
                break;
            }

            accepted++;
            if (ends)
            {
                break;   // what follows an end is not generated
            }
        }

        sequence.WithdrawDraft();
        int verified = Math.Min(drafted, fed);
        Fed = fed;
        _rounds++;
        _drafted += verified;
        _accepted += accepted;
        _lastLength = verified;
        _length.ObserveRound(verified, accepted, rejected, draftedAt - started, verifiedAt - draftedAt);
        return _pickedCount;
    }

    /// <summary>A plain one-token step of the target took <paramref name="ticks"/> (<see cref="Stopwatch"/> ticks).</summary>
    public void ObservePlainStep(long ticks)
    {
        _plain++;
        _length.ObservePlain(ticks);
    }

    public void Dispose() => _drafter?.Dispose();

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Observe(int row, int index, ReadOnlySpan<float> logits)
    {
        int at = index - _firstIndex;
        if (row == _observedRow && (uint)at <= (uint)(_logits.Length / _vocab - 1))
        {
            logits.CopyTo(_logits.AsSpan(at * _vocab, _vocab));
        }
    }
}

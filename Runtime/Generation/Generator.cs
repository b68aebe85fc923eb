using System.Diagnostics;
using System.Runtime.CompilerServices;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Constraints;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// Generates tokens for one sequence or one batch of sequences on a shared <see cref="GptModel"/>, keeping the
/// keys and values in a <see cref="KvCache"/> it owns. The lifecycle: <see cref="Append(ReadOnlySpan{int})"/> a
/// prompt (or <see cref="AppendText(string)"/>), then <see cref="GenerateNextToken"/> until <see cref="IsDone"/>
/// (or <see cref="StreamAsync"/> / <see cref="GenerateAll"/>); append again to continue a conversation, and
/// <see cref="RewindTo"/> to drop tokens from the end without recomputing the prefix.
/// <para>
/// It is the decoding core's scheduler for one conversation (the batching engine is the same for many): each row is
/// one sequence (its tokens, sampler, stop state and text); each step asks the decoder step of the graph's cache
/// layout to feed every row's pending tokens, then samples each unfinished row from its logits. Rows are seeded
/// apart: row b samples with <see cref="Seed"/> + b, so row 0 of a batch picks what the same prompt picks alone.
/// </para>
/// <para>
/// Several sequences per prompt: with <see cref="GenerationOptions.NumReturnSequences"/> k above 1 (sampling), the
/// first append gives each prompt p the k rows p·k .. p·k + k − 1 (row r seeded <see cref="Seed"/> + r); the prompt
/// runs once, in the first of them, and its cache and logits are then copied into the others
/// (<see cref="DecoderStep.CopyRow"/>; a cache in device memory, which C# cannot copy, feeds each row instead).
/// With <see cref="GenerationOptions.NumBeams"/> N above 1 the generator runs beam search (see
/// <see cref="BeamSearch"/> for the rules): each prompt gets N rows, and <see cref="Results"/> gives its
/// <see cref="GenerationOptions.NumReturnSequences"/> best hypotheses with their scores (row = prompt · k + rank).
/// Beam search decides its sequences at the end: it has no stop strings, no streaming, no rewind, and one append.
/// </para>
/// <para>
/// A batch's rows advance in lockstep through slots: an append gives every row as many slots as the longest chunk
/// (a shorter one is padded before its tokens), each step one slot; <see cref="Length"/> and <see cref="RewindTo"/>
/// count these slots. Padding computes nothing a row sees, so each row computes what it would alone. Each row stops
/// on its own (end of sequence, stop token, stop string, max new tokens, full context); a finished row no longer
/// changes.
/// </para>
/// <para>
/// The sequence never exceeds the model's context length: a prompt that does not fit is an error (or is cut, with
/// <see cref="PromptTruncation.Left"/>), and generation stops cleanly with <see cref="FinishReason.ContextFull"/>.
/// An empty prompt starts from the model's <c>bos_token_id</c>; a model without one refuses it.
/// </para>
/// The model runs on the tokens not yet seen when a token is wanted: a prompt in one step (or chunks), then one
/// token per step; with the fused graph only the last position of each row is projected to logits. That step
/// allocates nothing on the managed heap: inputs, outputs and the cache live in native memory bound to the graph;
/// with a tokenizer, each token's text piece is one small string. Not thread-safe: one generator per thread; many may
/// share one model.
/// </summary>
public sealed class Generator : IDisposable
{
    private readonly GptModel _model;
    private readonly ITextTokenizer? _tokenizer;
    private readonly int _vocab;
    private readonly int _context;
    private readonly int _eos;
    private readonly int[] _moreEnds;
    private readonly float[] _scratch;

    private DecoderStep? _step;
    private Sequence?[] _rows = [];
    private int[][] _slotOf = [];   // per row: the slot each of its tokens took
    private int[] _feed = [];
    private int[] _lastTokens = [];
    private int _slots;             // slots in the batch (Length)
    private int _reserved;          // slots the buffers are sized for
    private bool _logitsValid;
    private bool _disposed;
    private long _fed;
    private ulong _seed;
    private int _perPrompt = 1;        // rows per prompt of the first append (beams, or sequences per prompt)
    private bool _forkPending;         // the first row of each prompt runs it; the others copy it once it has run
    private BeamSearch? _beams;
    private Speculator? _speculator;   // speculative decoding of row 0 (a single sequence), once it decodes
    private int _aheadCount;           // tokens the last verifying step picked (the speculator's Picked) ...
    private int _aheadNext;            // ... of which this many have been handed out

    internal Generator(GptModel model, GenerationOptions options, GeneratorOptions settings)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentOutOfRangeException.ThrowIfNegative(settings.PrefillChunkTokens);
        options.Validate();
        _model = model;
        Options = options;
        Settings = settings;
        _tokenizer = settings.DecodeText ? model.Tokenizer : null;
        if (_tokenizer is null && options.StopStrings.Count > 0)
        {
            throw new OnnxGptException($"{model.ModelPath}: stop strings need text, but the model has no tokenizer (and DecodeText is {settings.DecodeText}).");
        }

        _vocab = model.Config.VocabSize;
        _context = model.Config.ContextLength;
        CheckForModel(options, model);
        _eos = settings.StopAtEndOfSequence && model.Config.EosTokenId is { } eos ? eos : -1;
        _moreEnds = settings.StopAtEndOfSequence ? [.. model.EndTokenIds.Where(t => t != _eos)] : [];
        _scratch = new float[Sampler.ScratchLength(_vocab)];
        _seed = PickSeed(options);
        CheckConstraint(options);
    }

    /// <summary>The model this generator runs.</summary>
    public GptModel Model => _model;

    /// <summary>How tokens are picked (see <see cref="SetOptions"/>).</summary>
    public GenerationOptions Options { get; private set; }

    /// <summary>How the model is run.</summary>
    public GeneratorOptions Settings { get; }

    /// <summary>The seed of row 0's sampler (the options' seed, or the one picked at random); row b uses this + b.</summary>
    public ulong Seed => _seed;

    /// <summary>
    /// Token positions fed to the model so far, per row (a batch feeds every row the same number of slots each step):
    /// a prompt counts its length, each decoding step one. With the KV cache, tokens kept by <see cref="RewindTo"/>
    /// are not fed again (but the last kept one); without it, every step counts the whole sequence.
    /// </summary>
    public long ProcessedTokens => _fed;

    /// <summary>Token positions fed to the model summed over rows (a prompt shared by several rows counts once).</summary>
    internal long FedPositions { get; private set; }

    /// <summary>
    /// Cache positions copied between rows so far: when beams fork (only the positions after the two rows' common
    /// prefix) and when several sequences per prompt start from the one that ran it. Each position is every layer's
    /// keys and values for every key/value head.
    /// </summary>
    public long CopiedCachePositions => _step?.CopiedPositions ?? 0;

    /// <summary>The time spent copying those positions (see <see cref="CopiedCachePositions"/>).</summary>
    public TimeSpan CacheCopyTime => Stopwatch.GetElapsedTime(0, _step?.CopyTicks ?? 0);

    /// <summary>Rows in the batch; 0 until the first append.</summary>
    public int BatchSize => _rows.Length;

    /// <summary>Tokens in the sequence (for a batch: slots, the longest row and padding included).</summary>
    public int Length => _slots;

    /// <summary>Whether keys and values are kept between steps (false: each step recomputes the whole sequence).</summary>
    public bool UsesKvCache => Settings.UseKvCache && _model.Signature.HasCache;

    /// <summary>The cache, once a prompt has been appended (null for a graph without past inputs).</summary>
    public KvCache? Cache => _step?.Cache;

    /// <summary>True when every row has finished (see <see cref="GetFinishReason"/>).</summary>
    public bool IsDone
    {
        get
        {
            if (_rows.Length == 0)
            {
                return false;
            }

            if (_beams is not null)
            {
                return _beams.IsDone;
            }

            foreach (var row in _rows)
            {
                if (row!.FinishReason == FinishReason.None)
                {
                    return false;
                }
            }

            return true;
        }
    }

    /// <summary>The token each row got in the last <see cref="GenerateNextToken"/>, or -1 for a row that had already finished.</summary>
    public ReadOnlySpan<int> LastTokens => _lastTokens;

    /// <summary>Tokens dropped from the front by <see cref="PromptTruncation.Left"/> at the last append (the most in any row).</summary>
    public int TruncatedTokens { get; private set; }

    /// <summary>What speculative decoding did since the options last changed (null when it is off).</summary>
    public SpeculationStatistics? Speculation => _speculator?.Statistics;

    /// <summary>Why <paramref name="row"/> stopped, or <see cref="FinishReason.None"/> while it is generating.</summary>
    public FinishReason GetFinishReason(int row) => Row(row).FinishReason;

    /// <summary>The row's tokens: prompt followed by everything generated (padding left out).</summary>
    public ReadOnlySpan<int> GetSequence(int row) => Row(row).Tokens;

    /// <summary>How many tokens of <see cref="GetSequence"/> came before the generation that followed the last append.</summary>
    public int GetPromptLength(int row) => Row(row).PromptLength;

    /// <summary>The log-probabilities of the row's tokens generated since the last append (null unless <see cref="GenerationOptions.TopLogProbs"/> is set).</summary>
    public IReadOnlyList<TokenLogProbs>? GetLogProbs(int row) => Row(row).LogProbs;

    /// <summary>The text generated for the row since the last append (null without a tokenizer).</summary>
    public string? GetText(int row) => Row(row).Text?.Text;

    /// <summary>The text the row's last token completed (empty while a character is incomplete, or without a tokenizer).</summary>
    public string GetLastPiece(int row) => Row(row).Text?.Piece ?? string.Empty;

    /// <summary>The logits for the row's next token (runs the model on pending tokens if needed).</summary>
    public ReadOnlySpan<float> GetNextTokenLogits(int row)
    {
        Row(row);
        Settle();
        EnsureLogits();
        return _step!.Logits(row);
    }

    /// <summary>
    /// Replaces how tokens are picked, keeping the sequence and the cache: new samplers (seeded afresh from
    /// <paramref name="options"/>), stop tokens and max new tokens from the next token on; stop strings from the next
    /// append. For a conversation that continues with other options (another request on the same cached prefix).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (see <see cref="GenerationOptions.Validate"/>).</exception>
    /// <exception cref="OnnxGptException">Stop strings are given but the generator decodes no text.</exception>
    public void SetOptions(GenerationOptions options)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (_tokenizer is null && options.StopStrings.Count > 0)
        {
            throw new OnnxGptException($"{_model.ModelPath}: stop strings need text, but the model has no tokenizer (and DecodeText is {Settings.DecodeText}).");
        }

        CheckConstraint(options);
        CheckForModel(options, _model);
        if (_rows.Length != 0 && (options.NumBeams != Options.NumBeams || options.NumReturnSequences != Options.NumReturnSequences))
        {
            throw new InvalidOperationException(
                $"NumBeams and NumReturnSequences are fixed once the batch has started ({Options.NumBeams} and {Options.NumReturnSequences}); create another generator.");
        }


        if (options.Speculates && _rows.Length > 1)
        {
            throw SpeculationNeedsOneRow(_rows.Length);
        }

        Settle();
        _speculator?.Dispose();
        _speculator = null;
        Options = options;
        _seed = PickSeed(options);
        for (int b = 0; b < _rows.Length; b++)
        {
            _rows[b]!.SetOptions(RowOptions(b));
            SetConstraint(b, options.Constraint);
        }
    }

    /// <summary>Appends tokens to a single sequence (the first call starts it, with a batch of one).</summary>
    /// <exception cref="OnnxGptException">A token id is outside the vocabulary; the sequence would not fit the
    /// context; or the prompt is empty and the model has no <c>bos_token_id</c>.</exception>
    public void Append(ReadOnlySpan<int> tokens) => AppendBatch([tokens.ToArray()]);

    /// <summary>Encodes <paramref name="text"/> with the model's tokenizer and appends it.</summary>
    /// <exception cref="OnnxGptException">The model has no tokenizer, or see <see cref="Append(ReadOnlySpan{int})"/>.</exception>
    public void AppendText(string text) => AppendTextBatch([text]);

    /// <summary>Encodes one text per row and appends them as a batch (see <see cref="AppendBatch"/>).</summary>
    public void AppendTextBatch(IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var tokenizer = _tokenizer ?? throw new OnnxGptException(
            $"{_model.ModelPath}: the model has no tokenizer to encode text with; append token ids instead.");
        var rows = new int[texts.Count][];
        for (int b = 0; b < rows.Length; b++)
        {
            rows[b] = tokenizer.Encode(texts[b] ?? throw new ArgumentNullException(nameof(texts), $"text {b} is null."));
            if (_slots == 0 && tokenizer.AddsBosToken && tokenizer.BosTokenId is { } bos)
            {
                rows[b] = [bos, .. rows[b]];                                   // a sequence starts with <s> (Llama's rule)
            }
        }

        AppendBatch(rows);
    }

    /// <summary>
    /// Appends one chunk of tokens to each row of a batch (the first call fixes the batch size). Rows of different
    /// lengths are left-padded within the chunk; an empty row appends nothing to that row, except on the first
    /// append, where it starts from <c>bos_token_id</c>.
    /// </summary>
    /// <exception cref="OnnxGptException">A token id is outside the vocabulary (the message names it and the
    /// vocabulary size); the longest row would not fit the context (the message gives both numbers); or a prompt is
    /// empty and the model has no <c>bos_token_id</c>.</exception>
    /// <exception cref="ArgumentException">The number of rows differs from the batch size.</exception>
    public void AppendBatch(IReadOnlyList<int[]> rows)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Count == 0)
        {
            throw new ArgumentException("give at least one row of tokens.", nameof(rows));
        }

        if (_beams is not null)
        {
            throw new InvalidOperationException("beam search runs once per generator: append its prompts once, then generate.");
        }

        if (_rows.Length != 0 && rows.Count != _rows.Length)
        {
            throw new ArgumentException($"this generator runs a batch of {_rows.Length} rows, not {rows.Count}.", nameof(rows));
        }

        if (rows.Count > 1 && Options.Speculates)
        {
            throw SpeculationNeedsOneRow(rows.Count);
        }

        Settle();

        var chunks = new int[rows.Count][];
        int longest = 0;
        for (int b = 0; b < rows.Count; b++)
        {
            var row = rows[b] ?? throw new ArgumentNullException(nameof(rows), $"row {b} is null.");
            CheckIds(row, b, rows.Count);
            chunks[b] = row;
            if (row.Length == 0 && _slots == 0)
            {
                chunks[b] = _model.Config.BosTokenId is { } bos
                    ? [bos]
                    : throw new OnnxGptException(
                        $"{RowName(b, rows.Count)}the prompt is empty and the model has no bos_token_id to start from; give at least one token.");
            }

            longest = Math.Max(longest, chunks[b].Length);
        }

        if (longest == 0)
        {
            return;
        }

        TruncatedTokens = 0;
        if (_slots + longest > _context)
        {
            if (Settings.Truncation == PromptTruncation.Left)
            {
                RestartTruncated(chunks);
                return;
            }

            throw _slots == 0
                ? new OnnxGptException(
                    $"the prompt has {longest} tokens but the model's context is {_context} tokens; shorten the prompt " +
                    "or choose left truncation (GeneratorOptions.Truncation = PromptTruncation.Left).")
                : new OnnxGptException(
                    $"appending {longest} tokens to the {_slots} in the sequence would make {_slots + longest}, more than the " +
                    $"model's context of {_context} tokens; RewindTo a shorter length first or choose left truncation.");
        }

        if (_model.Signature.AttentionMaskType is null && (_slots > 0 || Array.Exists(chunks, c => c.Length != longest)))
        {
            throw new OnnxGptException(
                $"{_model.ModelPath}: the graph has no attention_mask input, so it cannot mask padding; give rows of equal length and append once.");
        }

        if (_rows.Length == 0)
        {
            // Beams, or several sequences per prompt: each prompt gets k rows; its first runs it, the others start empty.
            _perPrompt = Options.IsBeamSearch ? Options.NumBeams : Options.NumReturnSequences;
            StartBatch(rows.Count * _perPrompt);
            _forkPending = _perPrompt > 1;
            var expanded = new int[_rows.Length][];
            for (int b = 0; b < expanded.Length; b++)
            {
                expanded[b] = b % _perPrompt == 0 || !RowsCanBeCopied && !Options.IsBeamSearch ? chunks[b / _perPrompt] : [];
            }

            chunks = expanded;
        }

        Reserve((int)Math.Min(_context, (long)_slots + longest + Options.MaxNewTokens));
        long now = Stopwatch.GetTimestamp();
        bool full = _slots + longest >= _context;
        for (int b = 0; b < _rows.Length; b++)
        {
            var row = _rows[b]!;
            var chunk = chunks[b];
            int first = _slots + longest - chunk.Length;   // left-padded: the chunk ends with the batch's slots
            for (int i = 0; i < chunk.Length; i++)
            {
                _slotOf[b][row.Length + i] = first + i;
            }

            row.Append(chunk);
            row.Begin(now, full);
            _lastTokens[b] = -1;
        }

        _slots += longest;
        _logitsValid = false;
        if (Options.IsBeamSearch)
        {
            if (!RowsCanBeCopied)
            {
                throw new OnnxGptException(
                    $"{_model.ModelPath}: beam search moves cache rows between beams, which C# can only do in host memory, and this model keeps its cache in {_model.CacheDevice} memory; run beam search on the CPU provider.");
            }

            int[] ends = _eos >= 0 ? [_eos, .. _moreEnds, .. Options.StopTokenIds.Where(t => t != _eos && !_moreEnds.Contains(t))] : [.. Options.StopTokenIds.Distinct()];
            _beams = new BeamSearch(_rows!, _step!, Options, rows.Count, _vocab, ends, _context);
            _forkPending = false;
        }
    }

    /// <summary>
    /// Runs the model on the tokens not yet seen (the whole prompt after an append, one token per step after that),
    /// picks the next token of every unfinished row and appends it. Does nothing once <see cref="IsDone"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">Nothing has been appended yet.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void GenerateNextToken()
    {
        ThrowIfDisposed();
        if (_rows.Length == 0)
        {
            throw new InvalidOperationException("Append a prompt before generating.");
        }

        if (IsDone)
        {
            return;
        }

        if (_beams is not null)
        {
            EnsureLogits();
            _beams.Step(Stopwatch.GetTimestamp(), last: _slots + 1 >= _context);
            _slots++;
            _logitsValid = false;
            return;
        }

        if (_slots == _reserved)
        {
            Reserve((int)Math.Min(_context, (long)_reserved + Math.Max(16, Options.MaxNewTokens)));
        }

        if (Options.Speculates && UsesKvCache)
        {
            // Allocated with the prompt (the draft's cache, the logits of every position), not while decoding.
            _speculator ??= new Speculator(_model, _rows[0]!.Options, _reserved);
            if (GenerateAhead())
            {
                return;
            }
        }

        long plainStarted = _speculator is not null && !_logitsValid && _rows[0]!.Pending == 1 ? Stopwatch.GetTimestamp() : 0;
        EnsureLogits();
        if (plainStarted != 0)
        {
            _speculator!.ObservePlainStep(Stopwatch.GetTimestamp() - plainStarted);
        }

        long now = Stopwatch.GetTimestamp();
        for (int b = 0; b < _rows.Length; b++)
        {
            var row = _rows[b]!;
            if (row.FinishReason != FinishReason.None)
            {
                _lastTokens[b] = -1;
                continue;
            }

            _slotOf[b][row.Length] = _slots;
            _lastTokens[b] = row.Next(_step!.Logits(b), _scratch, now);
        }

        _slots++;
        _logitsValid = false;
        if (_slots >= _context)
        {
            foreach (var row in _rows)
            {
                row!.Stop(FinishReason.ContextFull);
            }
        }
    }

    /// <summary>
    /// Keeps the first <paramref name="length"/> tokens of the sequence (for a batch: slots, padding included) and
    /// drops the rest. The cache keeps the prefix, so generation continues without recomputing it (only the last
    /// kept token is fed again); rows that had finished after that point generate again.
    /// </summary>
    public void RewindTo(int length)
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, _slots);
        Settle();
        if (length == _slots)
        {
            return;
        }

        if (_beams is not null)
        {
            throw new InvalidOperationException("a beam search cannot be rewound; create another generator.");
        }

        _slots = length;
        _logitsValid = false;
        for (int b = 0; b < _rows.Length; b++)
        {
            var row = _rows[b]!;
            // The row keeps its tokens in slots before `length`.
            int kept = Array.BinarySearch(_slotOf[b], 0, row.Length, length);
            row.RewindTo(kept < 0 ? ~kept : kept);
            _lastTokens[b] = -1;
            if (length >= _context)
            {
                row.Stop(FinishReason.ContextFull);
            }
        }

        _step!.Rewind();
    }

    /// <summary>
    /// Generates until every row is done, yielding each token as it comes (row by row within a step), with the
    /// text it completes. The cancellation token is checked between steps.
    /// </summary>
    /// <exception cref="NotSupportedException">The generator runs beam search, whose sequences are known only at the end (use <see cref="GenerateAll"/>).</exception>
    public async IAsyncEnumerable<GeneratedToken> StreamAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        if (_beams is not null || Options.IsBeamSearch)
        {
            throw new NotSupportedException("beam search decides its sequences at the end and cannot stream them; use GenerateAll.");
        }

        while (!IsDone)
        {
            cancellationToken.ThrowIfCancellationRequested();
            GenerateNextToken();
            for (int b = 0; b < _rows.Length; b++)
            {
                if (_lastTokens[b] >= 0)
                {
                    yield return new GeneratedToken(b, _lastTokens[b], GetLastPiece(b), _rows[b]!.FinishReason, _rows[b]!.LastLogProbs);
                }
            }

            await Task.Yield();
        }
    }

    /// <summary>Generates until every row is done and returns what each row produced. The cancellation token is checked between steps.</summary>
    /// <exception cref="InvalidOperationException">Nothing has been appended yet.</exception>
    public IReadOnlyList<GenerationResult> GenerateAll(CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        if (_rows.Length == 0)
        {
            throw new InvalidOperationException("Append a prompt before generating.");
        }

        while (!IsDone)
        {
            cancellationToken.ThrowIfCancellationRequested();
            GenerateNextToken();
        }

        return Results();
    }

    /// <summary>What each row has produced since the last append, so far.</summary>
    public IReadOnlyList<GenerationResult> Results()
    {
        if (_beams is not null)
        {
            return BeamResults(_beams);
        }

        var results = new GenerationResult[_rows.Length];
        for (int b = 0; b < _rows.Length; b++)
        {
            results[b] = Result(b, _rows[b]!) with { Prompt = b / _perPrompt };
        }

        return results;
    }

    /// <summary>Each prompt's best hypotheses, best first: prompt, generated tokens (with the end token that finished it), text, score.</summary>
    private GenerationResult[] BeamResults(BeamSearch beams)
    {
        var list = new List<GenerationResult>();
        foreach (var (group, rank, generated, ended, score) in beams.Results())
        {
            var lead = _rows[group * _perPrompt]!;
            var prompt = lead.Tokens[..lead.PromptLength];
            int last = generated.Length > 0 ? generated[^1] : -1;
            var reason = ended ? (last == _eos ? FinishReason.EndOfSequence : FinishReason.StopToken)
                : prompt.Length + generated.Length >= _context ? FinishReason.ContextFull : FinishReason.MaxNewTokens;
            string? text = _tokenizer?.Decode(ended ? generated[..^1] : generated);
            var elapsed = Stopwatch.GetElapsedTime(lead.StartedAt);
            list.Add(new GenerationResult(group * Options.NumReturnSequences + rank, [.. prompt, .. generated], prompt.Length, text, reason,
                elapsed, elapsed, Score: score, Prompt: group)
            {
                ConstraintComplete = lead.Constraint is null ? null : Completes(lead.Constraint, ended ? generated[..^1] : generated),
            });
        }

        return [.. list];
    }

    /// <summary>Whether <paramref name="tokens"/> complete the constraint <paramref name="state"/> follows (the state is reset and replays them).</summary>
    private static bool Completes(ConstraintState state, int[] tokens)
    {
        state.Reset();
        foreach (int token in tokens)
        {
            if (!state.TryAdvance(token))
            {
                return false;
            }
        }

        return state.IsComplete;
    }

    /// <summary>
    /// Runs the model on the pending tokens and hands <paramref name="observer"/> the logits after each real token
    /// (row, the token's index in the row's sequence, logits); padding is left out. For scoring text.
    /// </summary>
    internal void Score(DecoderStep.LogitsObserver observer)
    {
        ThrowIfDisposed();
        if (_rows.Length == 0)
        {
            throw new InvalidOperationException("Append tokens before scoring them.");
        }

        Settle();
        Feed(observer);
        _logitsValid = true;
    }

    /// <summary>
    /// Sets (or with null, clears) the constraint of one row, from its next token on: the text that row generates
    /// from here must complete <paramref name="constraint"/>. Rows of a batch may differ, so a constrained row shares
    /// the batch with free ones. <see cref="SetOptions"/> and the options set every row's constraint.
    /// </summary>
    /// <exception cref="OnnxGptException">The model has no tokenizer, or its vocabulary cannot write the constraint's text.</exception>
    public void SetConstraint(int row, OutputConstraint? constraint) => Row(row).Constraint = StartConstraint(constraint, Options);

    /// <summary>The row's constraint state (null when the row is unconstrained): whether its text is complete, and what may follow.</summary>
    public ConstraintState? GetConstraintState(int row) => Row(row).Constraint;

    /// <summary>A fresh state of <paramref name="constraint"/> on the model's tokenizer, ending at the end-of-sequence and stop tokens.</summary>
    internal static ConstraintState? StartConstraint(GptModel model, OutputConstraint? constraint, GenerationOptions options, int eos)
    {
        if (constraint is null)
        {
            return null;
        }

        var tokenizer = model.Tokenizer ?? throw NoTokenizer(model, constraint);
        return constraint.Start(tokenizer, eos >= 0 ? [.. options.StopTokenIds, eos] : options.StopTokenIds);
    }

    /// <summary>Refuses a constraint the model cannot run (no tokenizer, a vocabulary that cannot write it) before anything is generated.</summary>
    internal static void CheckConstraint(GptModel model, GenerationOptions options)
    {
        if (options.Constraint is { } constraint)
        {
            constraint.Compile(model.Tokenizer ?? throw NoTokenizer(model, constraint));
        }
    }

    /// <summary>Releases the cache and the native buffers.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _speculator?.Dispose();
        _step?.Dispose();
    }

    /// <summary>What one sequence has produced since its prompt, with its times from the prompt's arrival.</summary>
    internal static GenerationResult Result(int row, Sequence sequence)
    {
        var first = sequence.FirstTokenAt == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(sequence.StartedAt, sequence.FirstTokenAt);
        var last = sequence.LastTokenAt == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(sequence.StartedAt, sequence.LastTokenAt);
        return new GenerationResult(row, sequence.Tokens.ToArray(), sequence.PromptLength, sequence.Text?.Text, sequence.FinishReason, first, last,
            sequence.LogProbs?.ToArray())
        {
            ConstraintComplete = sequence.Constraint?.IsComplete,
        };
    }

    /// <summary>
    /// Speculative decoding of the single sequence: hands out the next token a verifying step picked, or runs such a
    /// step (the speculator drafts, the step verifies every draft position at once) and hands out its first token.
    /// Each call still appends one token, so streaming, stop rules and timing see the tokens one by one. False when
    /// the step is a plain one: the prompt's logits are fresh (the first token comes from them), or nothing was drafted.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private bool GenerateAhead()
    {
        var row = _rows[0]!;
        if (_aheadNext >= _aheadCount)
        {
            if (_logitsValid || row.Pending != 1)
            {
                return false;
            }

            _aheadCount = _speculator!.Round(_step!, _feed, 0, row, _scratch);
            _aheadNext = 0;
            if (_aheadCount == 0)
            {
                return false;
            }

            _fed += _speculator.Fed;
        }

        int token = _speculator!.Picked[_aheadNext++];
        _slotOf[0][row.Length] = _slots;
        row.Accept(token, Stopwatch.GetTimestamp());
        _lastTokens[0] = token;
        _slots++;
        _logitsValid = false;
        if (_aheadNext == _aheadCount || row.FinishReason != FinishReason.None)
        {
            Settle();
        }

        if (_slots >= _context)
        {
            row.Stop(FinishReason.ContextFull);
        }

        return true;
    }

    /// <summary>
    /// Drops the tokens a verifying step picked and not yet handed out, and lets the step keep the cache of those
    /// handed out (its rewind rule: all but the last token). Every call that changes the sequence comes here first.
    /// </summary>
    private void Settle()
    {
        if (_aheadCount == 0)
        {
            return;
        }

        _aheadCount = _aheadNext = 0;
        _step!.Rewind();
        _logitsValid = false;
    }

    private static OnnxGptException SpeculationNeedsOneRow(int rows) => new(
        $"speculative decoding runs a single sequence per generator, and this batch has {rows} rows (its rows would accept " +
        "different numbers of draft tokens per step, but a generator's rows advance together); generate the rows one by one, " +
        "or submit them to a BatchEngine, which speculates for a request while it decodes alone.");

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void EnsureLogits()
    {
        if (!_logitsValid)
        {
            Feed(null);
            _logitsValid = true;
            if (_forkPending)
            {
                ForkPrompts();
            }
        }
    }

    /// <summary>Several sequences per prompt: every other row of a prompt becomes a copy of the first, which ran it.</summary>
    private void ForkPrompts()
    {
        _forkPending = false;
        if (!RowsCanBeCopied)
        {
            return;   // each row was fed the prompt itself
        }

        for (int b = 0; b < _rows.Length; b++)
        {
            if (b % _perPrompt != 0)
            {
                var lead = _rows[b - b % _perPrompt]!;
                var row = _rows[b]!;
                row.CopyFrom(lead, 0);
                _step!.CopyRow(b - b % _perPrompt, b);
                _slotOf[b - b % _perPrompt].AsSpan(0, lead.Length).CopyTo(_slotOf[b]);
            }
        }
    }

    /// <summary>
    /// Runs the model on every row's pending tokens, in chunks of <see cref="GeneratorOptions.PrefillChunkTokens"/>
    /// (or as the step bounds its memory). Without the cache, every step starts again from nothing and feeds the whole
    /// sequence, and nothing counts as cached afterwards.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Feed(DecoderStep.LogitsObserver? observer)
    {
        var step = _step!;
        bool cache = UsesKvCache;
        if (!cache)
        {
            step.Rewind();
        }

        int chunk = Settings.PrefillChunkTokens > 0 && cache ? Settings.PrefillChunkTokens : int.MaxValue;
        while (true)
        {
            int most = 0;
            for (int b = 0; b < _rows.Length; b++)
            {
                _feed[b] = Math.Min(_rows[b]!.Pending, chunk);
                most = Math.Max(most, _feed[b]);
            }

            if (most == 0)
            {
                break;
            }

            step.Run(_feed, observer);
            most = 0;
            foreach (int fed in _feed)
            {
                most = Math.Max(most, fed);
                FedPositions += fed;
            }

            _fed += most;
        }

        if (!cache)
        {
            step.Rewind();
        }
    }

    private void StartBatch(int batch)
    {
        _rows = new Sequence?[batch];
        _slotOf = new int[batch][];
        _feed = new int[batch];
        _lastTokens = new int[batch];
        _lastTokens.AsSpan().Fill(-1);
        for (int b = 0; b < batch; b++)
        {
            // Beams decode their text at the end, from the hypothesis' tokens.
            _rows[b] = new Sequence(RowOptions(b), _eos, Options.IsBeamSearch ? null : _tokenizer)
            {
                Constraint = StartConstraint(Options.Constraint, Options), MoreEndTokens = _moreEnds,
            };
            _slotOf[b] = [];
        }

    }

    /// <summary>Sizes the rows, their slot maps and the decoder step for <paramref name="slots"/> slots.</summary>
    private void Reserve(int slots)
    {
        if (slots <= _reserved)
        {
            return;
        }

        for (int b = 0; b < _rows.Length; b++)
        {
            _rows[b]!.Reserve(slots);
            Array.Resize(ref _slotOf[b], slots);
        }

        if (_step is null)
        {
            _step = DecoderStep.Create(_model, _rows, slots, Settings.UseKvCache);
        }
        else
        {
            _step.Reserve(slots);
        }

        _reserved = slots;
    }

    private ConstraintState? StartConstraint(OutputConstraint? constraint, GenerationOptions options) => StartConstraint(_model, constraint, options, _eos);

    private void CheckConstraint(GenerationOptions options) => CheckConstraint(_model, options);

    private static OnnxGptException NoTokenizer(GptModel model, OutputConstraint constraint) =>
        new($"{model.ModelPath}: a constraint ({constraint.Description}) needs the model's tokenizer to know each token's text, and the model has none.");

    /// <summary>Whether cache rows can be copied from C#: the cache is in host memory (or not kept between steps).</summary>
    private bool RowsCanBeCopied => !UsesKvCache || _model.CacheDevice == "cpu";

    /// <summary>Checks what the model decides: logit bias ids inside the vocabulary; beam search without stop strings, with room for its candidates.</summary>
    private static void CheckForModel(GenerationOptions options, GptModel model)
    {
        int vocab = model.Config.VocabSize;
        foreach (int token in options.LogitBias.Keys)
        {
            if (token >= vocab)
            {
                throw new OnnxGptException($"LogitBias names token {token}, outside the model's vocabulary of {vocab} tokens (valid ids are 0 to {vocab - 1}).");
            }
        }

        if (options.IsBeamSearch && options.StopStrings.Count > 0)
        {
            throw new OnnxGptException($"beam search takes stop tokens but not stop strings (found {options.StopStrings.Count}); leave StopStrings empty with NumBeams {options.NumBeams}.");
        }

        if (options.IsBeamSearch && 2L * options.NumBeams > vocab)
        {
            throw new OnnxGptException($"beam search with {options.NumBeams} beams takes the best {2 * options.NumBeams} continuations each step, more than the vocabulary of {vocab}; use fewer beams.");
        }
    }

    private GenerationOptions RowOptions(int b) => b == 0 && Options.Seed == _seed ? Options : Options with { Seed = unchecked(_seed + (ulong)b) };

    private static ulong PickSeed(GenerationOptions options) => options.Seed ?? (ulong)Random.Shared.NextInt64(long.MinValue, long.MaxValue);

    /// <summary>Left truncation: each row's whole sequence plus its new chunk, cut to fit, appended afresh.</summary>
    private void RestartTruncated(int[][] chunks)
    {
        int keep = _context - Math.Min(Options.MaxNewTokens, _context / 2);
        var rows = new int[chunks.Length][];
        int dropped = 0;
        for (int b = 0; b < chunks.Length; b++)
        {
            var kept = _rows.Length == 0 ? [] : _rows[b]!.Tokens;
            var whole = new int[kept.Length + chunks[b].Length];
            kept.CopyTo(whole);
            chunks[b].CopyTo(whole, kept.Length);
            int cut = Math.Max(0, whole.Length - keep);
            dropped = Math.Max(dropped, cut);
            rows[b] = whole[cut..];
        }

        if (_slots > 0)
        {
            RewindTo(0);
        }

        AppendBatch(rows);
        TruncatedTokens = dropped;
    }

    private void CheckIds(int[] row, int b, int rows)
    {
        for (int i = 0; i < row.Length; i++)
        {
            if ((uint)row[i] >= (uint)_vocab)
            {
                throw new OnnxGptException(
                    $"{RowName(b, rows)}token id {row[i]} at position {i} is outside the vocabulary of {_vocab} tokens (valid ids are 0 to {_vocab - 1}).");
            }
        }
    }

    private static string RowName(int b, int rows) => rows == 1 ? "" : $"row {b}: ";

    private Sequence Row(int row)
    {
        ThrowIfDisposed();
        if ((uint)row >= (uint)_rows.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(row), row, _rows.Length == 0 ? "nothing has been appended yet." : $"the batch has {_rows.Length} rows.");
        }

        return _rows[row]!;
    }

    private void ThrowIfDisposed()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _model.ThrowIfDisposed();
    }
}

using System.Diagnostics;
using System.Runtime.CompilerServices;
using OnnxGpt.Contracts;
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
/// A batch holds rows of different lengths, left-padded: padding is masked out (<c>attention_mask</c> 0) and
/// positions count only real tokens, so each row computes what it would alone. Each row stops on its own (end of
/// sequence, stop token, stop string, max new tokens, full context); a finished row no longer changes.
/// With the fused graph the cache is laid out differently (each row's tokens from cache position 0, written in
/// place, see <see cref="KvCache.IsInPlace"/>), but the sequence, its slots and all the above stay the same.
/// </para>
/// <para>
/// The sequence never exceeds the model's context length: a prompt that does not fit is an error (or is cut, with
/// <see cref="PromptTruncation.Left"/>), and generation stops cleanly with <see cref="FinishReason.ContextFull"/>.
/// An empty prompt starts from the model's <c>bos_token_id</c>; a model without one refuses it.
/// </para>
/// The model runs on the tokens not yet seen when a token is wanted: a prompt in one step (or chunks), then one
/// token per step; with the fused graph only the last position of each row is projected to logits. That step allocates nothing on the managed heap: inputs, outputs and the cache live in native memory
/// bound to the graph; with a tokenizer, each token's text piece is one small string. Not thread-safe: one generator per thread; many may share one model.
/// </summary>
public sealed class Generator : IDisposable
{
    // What a slot holds. Padding is 0: the decoder step masks it out.
    private const byte PadSlot = 0;
    private const byte PromptSlot = 1;
    private const byte GeneratedSlot = 2;

    /// <summary>What padding slots hold: any valid id works, since the mask hides them.</summary>
    private const int PadToken = 0;

    /// <summary>Most logits one prompt step produces (16 Mi floats, 64 MiB): longer prompts are fed in chunks.</summary>
    private const long MaxPromptLogits = 1L << 24;

    private readonly GptModel _model;
    private readonly DecoderStep _step;
    private Sampler _sampler;
    private readonly ITextTokenizer? _tokenizer;
    private readonly int _vocab;
    private readonly int _context;
    private int[] _stopIds;
    private readonly int _eos;
    private readonly float[] _scratch;

    private int _batch;
    private int _capacity;
    private int _slots;        // tokens in the sequence, padding included
    private int _appendStart;  // the slot where the last append began
    private bool _logitsValid;
    private bool _disposed;

    // Per row and slot, at [b * _capacity + s].
    private int[] _slotToken = [];
    private int[] _slotPosition = [];
    private byte[] _slotKind = [];

    // Per row.
    private int[][] _rowTokens = [];
    private int[] _rowLength = [];
    private int[] _promptLength = [];
    private int[] _newTokens = [];
    private int[] _lastTokens = [];
    private FinishReason[] _finish = [];
    private long[] _firstTokenAt = [];
    private long[] _lastTokenAt = [];
    private long _appendedAt;

    // Per row, with a tokenizer: the generated text.
    private RowText[]? _texts;

    internal Generator(GptModel model, GenerationOptions options, GeneratorOptions settings)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentOutOfRangeException.ThrowIfNegative(settings.PrefillChunkTokens);
        _model = model;
        Options = options;
        Settings = settings;
        _sampler = new Sampler(options);
        _tokenizer = settings.DecodeText ? model.Tokenizer : null;
        if (_tokenizer is null && options.StopStrings.Count > 0)
        {
            throw new OnnxGptException($"{model.ModelPath}: stop strings need text, but the model has no tokenizer (and DecodeText is {settings.DecodeText}).");
        }

        _vocab = model.Config.VocabSize;
        _context = model.Config.ContextLength;
        _eos = settings.StopAtEndOfSequence && model.Config.EosTokenId is { } eos ? eos : -1;
        _stopIds = [.. options.StopTokenIds];
        _scratch = new float[Sampler.ScratchLength(_vocab)];
        _step = new DecoderStep(model, settings.UseKvCache);
    }

    /// <summary>The model this generator runs.</summary>
    public GptModel Model => _model;

    /// <summary>How tokens are picked (see <see cref="SetOptions"/>).</summary>
    public GenerationOptions Options { get; private set; }

    /// <summary>How the model is run.</summary>
    public GeneratorOptions Settings { get; }

    /// <summary>The seed the sampler uses (the options' seed, or the one picked at random).</summary>
    public ulong Seed => _sampler.Seed;

    /// <summary>
    /// Token positions fed to the model so far, per row (a batch feeds every row the same number of slots each step):
    /// a prompt counts its length, each decoding step one. With the KV cache, tokens kept by <see cref="RewindTo"/>
    /// are not fed again (but the last kept one); without it, every step counts the whole sequence.
    /// </summary>
    public long ProcessedTokens => _step.FedTokens;

    /// <summary>Rows in the batch; 0 until the first append.</summary>
    public int BatchSize => _batch;

    /// <summary>Tokens in the sequence (for a batch: slots, the longest row and padding included).</summary>
    public int Length => _slots;

    /// <summary>Whether keys and values are kept between steps (false: each step recomputes the whole sequence).</summary>
    public bool UsesKvCache => _step.UsesCache;

    /// <summary>The cache, once a prompt has been appended (null for a graph without past inputs).</summary>
    public KvCache? Cache => _step.Cache;

    /// <summary>True when every row has finished (see <see cref="GetFinishReason"/>).</summary>
    public bool IsDone
    {
        get
        {
            if (_batch == 0)
            {
                return false;
            }

            foreach (var f in _finish)
            {
                if (f == FinishReason.None)
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

    /// <summary>Why <paramref name="row"/> stopped, or <see cref="FinishReason.None"/> while it is generating.</summary>
    public FinishReason GetFinishReason(int row) => _finish[CheckRow(row)];

    /// <summary>The row's tokens: prompt followed by everything generated (padding left out).</summary>
    public ReadOnlySpan<int> GetSequence(int row)
    {
        CheckRow(row);
        return _rowTokens[row].AsSpan(0, _rowLength[row]);
    }

    /// <summary>How many tokens of <see cref="GetSequence"/> came before the generation that followed the last append.</summary>
    public int GetPromptLength(int row) => _promptLength[CheckRow(row)];

    /// <summary>The text generated for the row since the last append (null without a tokenizer).</summary>
    public string? GetText(int row)
    {
        CheckRow(row);
        return _texts?[row].Text;
    }

    /// <summary>The text the row's last token completed (empty while a character is incomplete, or without a tokenizer).</summary>
    public string GetLastPiece(int row) => _texts?[CheckRow(row)].Piece ?? string.Empty;

    /// <summary>The logits for the row's next token (runs the model on pending tokens if needed).</summary>
    public ReadOnlySpan<float> GetNextTokenLogits(int row)
    {
        CheckRow(row);
        EnsureLogits();
        return _step.NextLogits(row);
    }

    /// <summary>
    /// Replaces how tokens are picked, keeping the sequence and the cache: a new sampler (seeded afresh from
    /// <paramref name="options"/>), stop tokens and max new tokens from the next token on; stop strings from the next
    /// append. For a conversation that continues with other options (another request on the same cached prefix).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (see <see cref="GenerationOptions.Validate"/>).</exception>
    /// <exception cref="OnnxGptException">Stop strings are given but the generator decodes no text.</exception>
    public void SetOptions(GenerationOptions options)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(options);
        var sampler = new Sampler(options);
        if (_tokenizer is null && options.StopStrings.Count > 0)
        {
            throw new OnnxGptException($"{_model.ModelPath}: stop strings need text, but the model has no tokenizer (and DecodeText is {Settings.DecodeText}).");
        }

        _sampler = sampler;
        _stopIds = [.. options.StopTokenIds];
        Options = options;
        foreach (var text in _texts ?? [])
        {
            text.UseStopStrings(options.StopStrings);
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

        if (_batch != 0 && rows.Count != _batch)
        {
            throw new ArgumentException($"this generator runs a batch of {_batch} rows, not {rows.Count}.", nameof(rows));
        }

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

        if (_batch == 0)
        {
            StartBatch(rows.Count);
        }

        EnsureCapacity((int)Math.Min(_context, (long)_slots + longest + Options.MaxNewTokens));
        for (int b = 0; b < _batch; b++)
        {
            var chunk = chunks[b];
            int pad = longest - chunk.Length;
            for (int i = 0; i < longest; i++)
            {
                int at = b * _capacity + _slots + i;
                if (i < pad)
                {
                    // A row that gets nothing in a later append ends the chunk on padding, and its next token is read
                    // from the chunk's last slot: that slot repeats the row's last token at its own position. Masked
                    // as padding, it adds no key, and its query sees the same keys the original did: the same logits.
                    bool repeatLast = i == longest - 1 && _rowLength[b] > 0;
                    SetSlot(at, repeatLast ? _rowTokens[b][_rowLength[b] - 1] : PadToken, PadSlot, Math.Max(0, _rowLength[b] - 1));
                }
                else
                {
                    SetSlot(at, chunk[i - pad], PromptSlot, _rowLength[b]);
                    _rowTokens[b][_rowLength[b]++] = chunk[i - pad];
                }
            }
        }

        _appendStart = _slots;
        _slots += longest;
        _logitsValid = false;
        _appendedAt = Stopwatch.GetTimestamp();
        for (int b = 0; b < _batch; b++)
        {
            _promptLength[b] = _rowLength[b];
            _newTokens[b] = 0;
            _lastTokens[b] = -1;
            _firstTokenAt[b] = _lastTokenAt[b] = 0;
            _finish[b] = Options.MaxNewTokens == 0 ? FinishReason.MaxNewTokens
                : _slots >= _context ? FinishReason.ContextFull
                : FinishReason.None;
            _texts?[b].Reset(_rowLength[b] > 0 ? _rowTokens[b][_rowLength[b] - 1] : -1);   // the text follows the prompt's last token
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
        if (_batch == 0)
        {
            throw new InvalidOperationException("Append a prompt before generating.");
        }

        if (IsDone)
        {
            return;
        }

        EnsureLogits();
        if (_slots == _capacity)
        {
            EnsureCapacity((int)Math.Min(_context, (long)_capacity + Math.Max(16, Options.MaxNewTokens)));
        }

        long now = Stopwatch.GetTimestamp();
        int slot = _slots;
        for (int b = 0; b < _batch; b++)
        {
            int at = b * _capacity + slot;
            if (_finish[b] != FinishReason.None)
            {
                _lastTokens[b] = -1;
                SetSlot(at, PadToken, PadSlot, Math.Max(0, _rowLength[b] - 1));
                continue;
            }

            int length = _rowLength[b];
            int token = _sampler.Sample(_step.NextLogits(b), _rowTokens[b].AsSpan(0, length), _scratch);
            SetSlot(at, token, GeneratedSlot, length);
            _rowTokens[b][length] = token;
            _rowLength[b] = length + 1;
            _lastTokens[b] = token;
            _newTokens[b]++;
            if (_firstTokenAt[b] == 0)
            {
                _firstTokenAt[b] = now;
            }

            _lastTokenAt[b] = now;
            var reason = StopReason(token, _newTokens[b]);
            _finish[b] = _texts is null ? reason : _texts[b].Add(token, reason);
        }

        _slots++;
        _logitsValid = false;
        if (_slots >= _context)
        {
            for (int b = 0; b < _batch; b++)
            {
                if (_finish[b] == FinishReason.None)
                {
                    _finish[b] = FinishReason.ContextFull;
                    _texts?[b].Finish();
                }
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
        if (length == _slots)
        {
            return;
        }

        _slots = length;
        if (!_step.InPlace)
        {
            _step.Truncate(Math.Max(0, length - 1));  // keep a token to feed, so the next step has logits to sample from
        }
        _appendStart = Math.Min(_appendStart, length);
        _logitsValid = false;
        for (int b = 0; b < _batch; b++)
        {
            int real = 0, generated = 0, lastKind = PadSlot, lastToken = -1;
            for (int s = 0; s < length; s++)
            {
                int at = b * _capacity + s;
                if (_slotKind[at] == PadSlot)
                {
                    continue;
                }

                real++;
                lastKind = _slotKind[at];
                lastToken = _slotToken[at];
                if (s >= _appendStart && lastKind == GeneratedSlot)
                {
                    generated++;
                }
            }

            _rowLength[b] = real;
            _promptLength[b] = Math.Min(_promptLength[b], real);
            _newTokens[b] = generated;
            _lastTokens[b] = -1;
            _finish[b] = length == 0 ? FinishReason.None
                : lastKind == GeneratedSlot ? StopReason(lastToken, generated)
                : Options.MaxNewTokens == 0 ? FinishReason.MaxNewTokens
                : FinishReason.None;
            if (_finish[b] == FinishReason.None && length >= _context)
            {
                _finish[b] = FinishReason.ContextFull;
            }

            if (_texts is not null)
            {
                _finish[b] = _texts[b].Replay(GeneratedText(b), _finish[b]);
            }
        }

        if (_step.InPlace)
        {
            _step.TruncateRows(_rowLength);   // each row keeps its last token to feed again
        }
    }

    /// <summary>
    /// Generates until every row is done, yielding each token as it comes (row by row within a step), with the
    /// text it completes. The cancellation token is checked between steps.
    /// </summary>
    public async IAsyncEnumerable<GeneratedToken> StreamAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        while (!IsDone)
        {
            cancellationToken.ThrowIfCancellationRequested();
            GenerateNextToken();
            for (int b = 0; b < _batch; b++)
            {
                if (_lastTokens[b] >= 0)
                {
                    yield return new GeneratedToken(b, _lastTokens[b], GetLastPiece(b), _finish[b]);
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
        if (_batch == 0)
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
        var results = new GenerationResult[_batch];
        for (int b = 0; b < _batch; b++)
        {
            var first = _firstTokenAt[b] == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(_appendedAt, _firstTokenAt[b]);
            var last = _lastTokenAt[b] == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(_appendedAt, _lastTokenAt[b]);
            results[b] = new GenerationResult(b, GetSequence(b).ToArray(), _promptLength[b], GetText(b), _finish[b], first, last);
        }

        return results;
    }

    /// <summary>
    /// Runs the model on the pending tokens and hands <paramref name="observer"/> the logits after each real token
    /// (row, the token's index in the row's sequence, logits); padding is left out. For scoring text.
    /// </summary>
    internal void Score(DecoderStep.LogitsObserver observer)
    {
        ThrowIfDisposed();
        if (_batch == 0)
        {
            throw new InvalidOperationException("Append tokens before scoring them.");
        }

        Feed(observer);
        _logitsValid = true;
    }

    /// <summary>Releases the cache and the native buffers.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _step.Dispose();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void EnsureLogits()
    {
        if (!_logitsValid)
        {
            Feed(null);
            _logitsValid = true;
        }
    }

    /// <summary>
    /// Runs the model on the pending tokens. With the cache, a long prompt goes in chunks, so the logits of one
    /// step (batch × chunk × vocabulary floats) stay under <see cref="MaxPromptLogits"/> however long the prompt
    /// (with the fused graph's in-place cache, <see cref="DecoderStep.RunRows"/> picks the chunk).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Feed(DecoderStep.LogitsObserver? observer)
    {
        if (_step.InPlace)
        {
            // Rows at their own lengths; without the cache, every step starts again from an empty one.
            if (!_step.UsesCache)
            {
                _step.ForgetRows();
            }

            do
            {
                _step.RunRows(_rowTokens, _rowLength, Settings.PrefillChunkTokens, observer);
            }
            while (_step.HasPending(_rowLength));

            if (!_step.UsesCache)
            {
                _step.ForgetRows();
            }

            return;
        }

        if (!_step.UsesCache)
        {
            _step.Run(_slotToken, _slotPosition, _slotKind, _slots, observer);
            return;
        }

        long chunk = Settings.PrefillChunkTokens > 0 ? Settings.PrefillChunkTokens : Math.Max(16, MaxPromptLogits / ((long)_batch * _vocab));
        do
        {
            _step.Run(_slotToken, _slotPosition, _slotKind, (int)Math.Min(_slots, _step.Cached + chunk), observer);
        }
        while (_step.Cached < _slots);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private FinishReason StopReason(int token, int newTokens)
    {
        if (token == _eos)
        {
            return FinishReason.EndOfSequence;
        }

        if (Array.IndexOf(_stopIds, token) >= 0)
        {
            return FinishReason.StopToken;
        }

        return newTokens >= Options.MaxNewTokens ? FinishReason.MaxNewTokens : FinishReason.None;
    }

    /// <summary>The row's generated tokens since the append, stop tokens left out: what its text is made of.</summary>
    private IEnumerable<int> GeneratedText(int b)
    {
        for (int s = _appendStart; s < _slots; s++)
        {
            int at = b * _capacity + s;
            if (_slotKind[at] == GeneratedSlot && _slotToken[at] != _eos && Array.IndexOf(_stopIds, _slotToken[at]) < 0)
            {
                yield return _slotToken[at];
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void SetSlot(int at, int token, byte kind, int position)
    {
        _slotToken[at] = token;
        _slotKind[at] = kind;
        _slotPosition[at] = position;
    }

    private void StartBatch(int batch)
    {
        _batch = batch;
        _rowTokens = new int[batch][];
        _rowLength = new int[batch];
        _promptLength = new int[batch];
        _newTokens = new int[batch];
        _lastTokens = new int[batch];
        _finish = new FinishReason[batch];
        _firstTokenAt = new long[batch];
        _lastTokenAt = new long[batch];
        _lastTokens.AsSpan().Fill(-1);
        for (int b = 0; b < batch; b++)
        {
            _rowTokens[b] = [];
        }

        if (_tokenizer is not null)
        {
            _texts = new RowText[batch];
            for (int b = 0; b < batch; b++)
            {
                _texts[b] = new RowText(_tokenizer, Options.StopStrings, Math.Min(Options.MaxNewTokens, _context));
            }
        }
    }

    /// <summary>Grows every per-slot array and the decoder step's buffers to <paramref name="capacity"/> slots, keeping their contents.</summary>
    private void EnsureCapacity(int capacity)
    {
        if (capacity <= _capacity)
        {
            return;
        }

        int old = _capacity;
        _slotToken = Regrow(_slotToken, old, capacity);
        _slotPosition = Regrow(_slotPosition, old, capacity);
        _slotKind = Regrow(_slotKind, old, capacity);
        for (int b = 0; b < _batch; b++)
        {
            Array.Resize(ref _rowTokens[b], capacity);
        }

        _step.Allocate(_batch, capacity);
        _capacity = capacity;
    }

    private T[] Regrow<T>(T[] array, int from, int to)
    {
        var fresh = new T[_batch * to];
        for (int b = 0; b < _batch && from > 0; b++)
        {
            Array.Copy(array, b * from, fresh, b * to, from);
        }

        return fresh;
    }

    /// <summary>Left truncation: each row's whole sequence plus its new chunk, cut to fit, appended afresh.</summary>
    private void RestartTruncated(int[][] chunks)
    {
        int keep = _context - Math.Min(Options.MaxNewTokens, _context / 2);
        var rows = new int[chunks.Length][];
        int dropped = 0;
        for (int b = 0; b < chunks.Length; b++)
        {
            int kept = _batch == 0 ? 0 : _rowLength[b];
            var whole = new int[kept + chunks[b].Length];
            if (kept > 0)
            {
                _rowTokens[b].AsSpan(0, kept).CopyTo(whole);
            }

            chunks[b].CopyTo(whole, kept);
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

    private int CheckRow(int row)
    {
        ThrowIfDisposed();
        if ((uint)row >= (uint)_batch)
        {
            throw new ArgumentOutOfRangeException(nameof(row), row, _batch == 0 ? "nothing has been appended yet." : $"the batch has {_batch} rows.");
        }

        return row;
    }

    private void ThrowIfDisposed()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _model.ThrowIfDisposed();
    }
}

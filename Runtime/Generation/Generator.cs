using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using OnnxGpt.Model;
using OnnxGpt.Native;

namespace OnnxGpt.Generation;

// Shapes: B batch, T tokens fed this step, P cached tokens, S = P + T, V vocabulary, C context length.

/// <summary>
/// Generates tokens for one sequence or one batch of sequences on a shared <see cref="GptModel"/>, keeping the
/// keys and values in a <see cref="KvCache"/> it owns. The lifecycle: <see cref="Append(ReadOnlySpan{int})"/> a
/// prompt, then <see cref="GenerateNextToken"/> until <see cref="IsDone"/> (or <see cref="StreamAsync"/> /
/// <see cref="GenerateAll"/>); <see cref="Append(ReadOnlySpan{int})"/> again to continue a conversation, and
/// <see cref="RewindTo"/> to drop tokens from the end without recomputing the prefix.
/// <para>
/// A batch holds rows of different lengths, left-padded: padding is masked out (<c>attention_mask</c> 0) and
/// positions count only real tokens, so each row computes exactly what it would alone. Each row stops on its own
/// (end of sequence, stop token, stop string, max new tokens, full context); a finished row no longer changes.
/// </para>
/// <para>
/// The sequence never exceeds the model's context length: a prompt that does not fit is an error (or is cut, with
/// <see cref="PromptTruncation.Left"/>), and generation stops cleanly with <see cref="FinishReason.ContextFull"/>.
/// An empty prompt starts from the model's <c>bos_token_id</c>; a model without one refuses it.
/// </para>
/// Generating a token allocates nothing on the managed heap (inputs, outputs and the cache live in native memory
/// bound once per step). Not thread-safe: use one generator per thread; many may share one model.
/// </summary>
public sealed unsafe class Generator : IDisposable
{
    private const byte PadSlot = 0;
    private const byte PromptSlot = 1;
    private const byte GeneratedSlot = 2;

    /// <summary>What padding slots hold: any valid token id works, since the mask hides them.</summary>
    private const int PadToken = 0;

    private readonly GptModel _model;
    private readonly ModelSignature _signature;
    private readonly Sampler _sampler;
    private readonly int _vocab;
    private readonly int _context;
    private readonly int[] _stopIds;
    private readonly int _eos;
    private readonly OrtIoBinding _binding;
    private readonly RunOptions _runOptions;
    private readonly IntPtr _memoryInfo;
    private readonly NativeName _idsName = new(ModelSignature.InputIds);
    private readonly NativeName _maskName = new(ModelSignature.AttentionMask);
    private readonly NativeName _positionsName = new(ModelSignature.PositionIds);
    private readonly NativeName _branchName = new(ModelSignature.UseCacheBranch);
    private readonly NativeName _logitsName = new(ModelSignature.Logits);
    private readonly float[] _scratch;
    private readonly bool _useCache;

    private KvCache? _cache;
    private int _batch;
    private int _capacity;
    private int _slots;      // tokens in the sequence, padding included: fed plus pending
    private int _fed;        // tokens whose keys and values are in the cache
    private int _appendStart;
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

    // Native memory bound to the graph.
    private NativeBuffer<long>? _ids;
    private NativeBuffer<long>? _positions;
    private NativeBuffer<long>? _mask;
    private NativeBuffer<byte>? _branch;
    private NativeBuffer<float>? _logits;
    private NativeBuffer<float>? _wideLogits;

    internal Generator(GptModel model, GenerationOptions options, GeneratorOptions settings)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(settings);
        _model = model;
        _signature = model.Signature;
        Options = options;
        Settings = settings;
        _sampler = new Sampler(options);
        _vocab = model.Config.VocabSize;
        _context = model.Config.ContextLength;
        _eos = settings.StopAtEndOfSequence && model.Config.EosTokenId is { } eos ? eos : -1;
        _stopIds = [.. options.StopTokenIds];
        _useCache = settings.UseKvCache && _signature.HasCache;
        _scratch = new float[Sampler.ScratchLength(_vocab)];
        _memoryInfo = OrtMemoryInfo.DefaultInstance.DangerousGetHandle();
        _runOptions = new RunOptions();
        _binding = model.Session.CreateIoBinding();
    }

    public GptModel Model => _model;

    /// <summary>How tokens are picked.</summary>
    public GenerationOptions Options { get; }

    /// <summary>How the model is run.</summary>
    public GeneratorOptions Settings { get; }

    /// <summary>Rows in the batch; 0 until the first <see cref="Append(ReadOnlySpan{int})"/>.</summary>
    public int BatchSize => _batch;

    /// <summary>Tokens in the sequence (for a batch: the longest row, padding included).</summary>
    public int Length => _slots;

    /// <summary>Whether keys and values are kept between steps (false: each step recomputes the whole sequence).</summary>
    public bool UsesKvCache => _useCache;

    /// <summary>The cache, once the first prompt has been appended (null for a graph without past inputs).</summary>
    public KvCache? Cache => _cache;

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

    /// <summary>
    /// Tokens dropped from the front by <see cref="PromptTruncation.Left"/> at the last append, in the row that lost
    /// the most; 0 when nothing was cut.
    /// </summary>
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

    /// <summary>The logits for the row's next token (runs the model on pending tokens if needed).</summary>
    public ReadOnlySpan<float> GetNextTokenLogits(int row)
    {
        CheckRow(row);
        EnsureLogits();
        return _logits!.Slice((long)row * _vocab, _vocab);
    }

    /// <summary>Appends tokens to a single sequence (the first call starts it with a batch of one).</summary>
    /// <exception cref="OnnxGptException">A token id is outside the vocabulary; the sequence would not fit the
    /// context; or the prompt is empty and the model has no <c>bos_token_id</c>.</exception>
    public void Append(ReadOnlySpan<int> tokens) => AppendBatch([tokens.ToArray()]);

    /// <summary>
    /// Appends one chunk of tokens to each row of a batch (the first call fixes the batch size). Rows of different
    /// lengths are left-padded within the chunk. On the first call an empty row starts from <c>bos_token_id</c>.
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
        for (int b = 0; b < rows.Count; b++)
        {
            var row = rows[b] ?? throw new ArgumentNullException(nameof(rows), $"row {b} is null.");
            CheckIds(row, b, rows.Count);
            chunks[b] = row;
            if (row.Length == 0 && (_batch == 0 || _slots == 0))
            {
                chunks[b] = _model.Config.BosTokenId is { } bos
                    ? [bos]
                    : throw new OnnxGptException(
                        $"{RowName(b, rows.Count)}the prompt is empty and the model has no bos_token_id to start from; give at least one token.");
            }
        }

        int longest = 0;
        foreach (var c in chunks)
        {
            longest = Math.Max(longest, c.Length);
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
                if (_batch == 0)
                {
                    StartBatch(rows.Count);
                }

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

        if (_signature.AttentionMaskType is null && (_slots > 0 || Array.Exists(chunks, c => c.Length != longest)))
        {
            throw new OnnxGptException(
                $"{_model.ModelPath}: the graph has no attention_mask input, so it cannot mask padding; give rows of equal length and append once.");
        }

        if (_batch == 0)
        {
            StartBatch(rows.Count);
        }

        EnsureCapacity(Math.Min(_context, _slots + longest + Options.MaxNewTokens));
        for (int b = 0; b < _batch; b++)
        {
            var chunk = chunks[b];
            int pad = longest - chunk.Length;
            for (int i = 0; i < longest; i++)
            {
                int at = b * _capacity + _slots + i;
                if (i < pad)
                {
                    SetSlot(at, PadToken, PadSlot, Math.Max(0, _rowLength[b] - 1));
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
        }
    }

    /// <summary>
    /// Runs the model on the tokens not yet seen (the whole prompt after an append, one token per step after that),
    /// picks the next token of every unfinished row and appends it. Does nothing once <see cref="IsDone"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">Nothing has been appended yet.</exception>
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
            EnsureCapacity(Math.Min(_context, _capacity + Math.Max(16, Options.MaxNewTokens)));
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
            int token = _sampler.Sample(_logits!.Slice((long)b * _vocab, _vocab), _rowTokens[b].AsSpan(0, length), _scratch);
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
            _finish[b] = StopReason(token, _newTokens[b]);
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
                }
            }
        }
    }

    /// <summary>
    /// Keeps the first <paramref name="length"/> tokens of the sequence (for a batch: slots, padding included) and
    /// drops the rest. The cache keeps the prefix, so generation continues without recomputing it; rows that had
    /// finished after that point generate again.
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
        if (_useCache)
        {
            // Keep at least one token to feed, so the next step has logits to sample from.
            int keep = Math.Max(0, Math.Min(_fed, length - 1));
            _cache!.Truncate(keep);
            _fed = keep;
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
        }
    }

    /// <summary>
    /// Generates until every row is done, yielding each token as it comes (row by row within a step).
    /// The token is checked between steps.
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
                    yield return new GeneratedToken(b, _lastTokens[b], string.Empty, _finish[b]);
                }
            }

            await Task.Yield();
        }
    }

    /// <summary>Generates until every row is done and returns what each row produced. The token is checked between steps.</summary>
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

    /// <summary>What each row has produced since the last append.</summary>
    public IReadOnlyList<GenerationResult> Results()
    {
        var results = new GenerationResult[_batch];
        for (int b = 0; b < _batch; b++)
        {
            var first = _firstTokenAt[b] == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(_appendedAt, _firstTokenAt[b]);
            var last = _lastTokenAt[b] == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(_appendedAt, _lastTokenAt[b]);
            results[b] = new GenerationResult(b, GetSequence(b).ToArray(), _promptLength[b], null, _finish[b], first, last);
        }

        return results;
    }

    /// <summary>
    /// Runs the model on the pending tokens and hands <paramref name="observer"/> the logits of every one of them:
    /// (row, index of the token in the sequence, padding included, its logits). For scoring text.
    /// </summary>
    internal void Forward(LogitsObserver? observer)
    {
        ThrowIfDisposed();
        if (_batch == 0 || _slots == 0)
        {
            throw new InvalidOperationException("Append tokens before running the model.");
        }

        int past = _useCache ? _fed : 0;
        int t = _slots - past;
        int total = _slots;
        IntPtr binding = _binding.DangerousGetHandle();
        Span<long> shape = stackalloc long[3];

        WriteInputs(past, t, total);
        shape[0] = _batch;
        shape[1] = t;
        BindIndexInput(binding, _idsName, _ids!, _signature.InputIdsType, shape[..2]);
        if (_signature.PositionIdsType is { } positionType)
        {
            BindIndexInput(binding, _positionsName, _positions!, positionType, shape[..2]);
        }

        if (_signature.AttentionMaskType is { } maskType)
        {
            shape[1] = total;
            BindIndexInput(binding, _maskName, _mask!, maskType, shape[..2]);
        }

        if (_signature.HasUseCacheBranch)
        {
            *_branch!.Pointer = past > 0 ? (byte)1 : (byte)0;
            shape[0] = 1;
            OrtNative.Bind(binding, output: false, _branchName, _memoryInfo, _branch.Pointer, 1, shape[..1], TensorElementType.Bool);
        }

        _cache?.Bind(binding, _memoryInfo, past, total);

        bool wide = t > 1 || observer is not null;
        NativeBuffer<float> logits = _logits!;
        if (wide)
        {
            long needed = (long)_batch * t * _vocab;
            if (_wideLogits is null || _wideLogits.Length < needed)
            {
                // Without the cache every step feeds the whole sequence: size for the capacity once, not per step.
                _wideLogits?.Dispose();
                _wideLogits = null;
                _wideLogits = new NativeBuffer<float>(_useCache ? needed : Math.Max(needed, (long)_batch * _capacity * _vocab));
            }

            logits = _wideLogits;
        }

        shape[0] = _batch;
        shape[1] = t;
        shape[2] = _vocab;
        OrtNative.Bind(binding, output: true, _logitsName, _memoryInfo, logits.Pointer, (long)_batch * t * _vocab * sizeof(float), shape, TensorElementType.Float);

        _model.EnterRun();
        try
        {
            _model.Session.RunWithBinding(_runOptions, _binding);
        }
        catch (OnnxRuntimeException e)
        {
            throw new OnnxGptException($"{_model.ModelPath}: ONNX Runtime failed on a step of {t} new and {past} cached tokens: {e.Message}", e);
        }
        finally
        {
            _model.ExitRun();
        }

        if (_useCache)
        {
            _cache!.Commit(total);
            _fed = total;
        }

        if (wide)
        {
            for (int b = 0; b < _batch; b++)
            {
                _wideLogits!.Slice(((long)b * t + t - 1) * _vocab, _vocab).CopyTo(_logits!.Slice((long)b * _vocab, _vocab));
                if (observer is not null)
                {
                    for (int i = 0; i < t; i++)
                    {
                        observer(b, total - t + i, _wideLogits.Slice(((long)b * t + i) * _vocab, _vocab));
                    }
                }
            }

            if (_useCache)
            {
                // A prompt's logits are needed once; keep only the one row per sequence the next steps use.
                _wideLogits!.Dispose();
                _wideLogits = null;
            }
        }

        _logitsValid = true;
    }

    /// <summary>Receives the logits of one token: its row, its index in the sequence, the logits.</summary>
    internal delegate void LogitsObserver(int row, int index, ReadOnlySpan<float> logits);

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (!_binding.IsInvalid)
        {
            OrtNative.ClearBindings(_binding.DangerousGetHandle());
        }

        _binding.Dispose();
        _runOptions.Dispose();
        _cache?.Dispose();
        _ids?.Dispose();
        _positions?.Dispose();
        _mask?.Dispose();
        _branch?.Dispose();
        _logits?.Dispose();
        _wideLogits?.Dispose();
        _idsName.Dispose();
        _maskName.Dispose();
        _positionsName.Dispose();
        _branchName.Dispose();
        _logitsName.Dispose();
    }

    private void EnsureLogits()
    {
        if (!_logitsValid)
        {
            Forward(null);
        }
    }

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

    private void SetSlot(int at, int token, byte kind, int position)
    {
        _slotToken[at] = token;
        _slotKind[at] = kind;
        _slotPosition[at] = position;
    }

    /// <summary>Writes input_ids and position_ids (B, T) for slots [past, total) and attention_mask (B, S) for [0, total).</summary>
    private void WriteInputs(int past, int t, int total)
    {
        for (int b = 0; b < _batch; b++)
        {
            int row = b * _capacity;
            for (int i = 0; i < t; i++)
            {
                WriteIndex(_ids!, _signature.InputIdsType, (long)b * t + i, _slotToken[row + past + i]);
                if (_signature.PositionIdsType is { } positionType)
                {
                    WriteIndex(_positions!, positionType, (long)b * t + i, _slotPosition[row + past + i]);
                }
            }

            if (_signature.AttentionMaskType is { } maskType)
            {
                for (int s = 0; s < total; s++)
                {
                    WriteIndex(_mask!, maskType, (long)b * total + s, _slotKind[row + s] == PadSlot ? 0 : 1);
                }
            }
        }
    }

    private static void WriteIndex(NativeBuffer<long> buffer, TensorElementType type, long index, int value)
    {
        switch (type)
        {
            case TensorElementType.Int64:
                buffer.Pointer[index] = value;
                break;
            case TensorElementType.Int32:
                ((int*)buffer.Pointer)[index] = value;
                break;
            default:
                ((float*)buffer.Pointer)[index] = value;
                break;
        }
    }

    private void BindIndexInput(IntPtr binding, NativeName name, NativeBuffer<long> buffer, TensorElementType type, ReadOnlySpan<long> shape)
    {
        long count = 1;
        foreach (var d in shape)
        {
            count *= d;
        }

        int size = type == TensorElementType.Int64 ? 8 : 4;
        OrtNative.Bind(binding, output: false, name, _memoryInfo, buffer.Pointer, count * size, shape, type);
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
        _logits = new NativeBuffer<float>((long)batch * _vocab);
        _branch = new NativeBuffer<byte>(1);
        for (int b = 0; b < batch; b++)
        {
            _rowTokens[b] = [];
        }
    }

    /// <summary>Grows every per-slot buffer and the cache to <paramref name="capacity"/> tokens, keeping their contents.</summary>
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

        long cells = (long)_batch * capacity;
        ReplaceBuffer(ref _ids, cells);
        ReplaceBuffer(ref _positions, cells);
        ReplaceBuffer(ref _mask, cells);
        if (_signature.HasCache)
        {
            if (_cache is null)
            {
                _cache = new KvCache(_signature, _model.Config, _batch, capacity);
            }
            else
            {
                _cache.EnsureCapacity(capacity);
            }
        }

        _capacity = capacity;

        T[] Regrow<T>(T[] array, int from, int to)
        {
            var fresh = new T[_batch * to];
            for (int b = 0; b < _batch && from > 0; b++)
            {
                Array.Copy(array, b * from, fresh, b * to, from);
            }

            return fresh;
        }

        static void ReplaceBuffer(ref NativeBuffer<long>? buffer, long length)
        {
            buffer?.Dispose();
            buffer = null;
            buffer = new NativeBuffer<long>(length);
        }
    }

    /// <summary>Left truncation: each row's whole sequence plus its new chunk, cut to fit, appended afresh.</summary>
    private void RestartTruncated(int[][] chunks)
    {
        int keep = _context - Math.Min(Options.MaxNewTokens, _context / 2);
        var rows = new int[_batch][];
        int dropped = 0;
        for (int b = 0; b < _batch; b++)
        {
            var whole = new int[_rowLength[b] + chunks[b].Length];
            _rowTokens[b].AsSpan(0, _rowLength[b]).CopyTo(whole);
            chunks[b].CopyTo(whole, _rowLength[b]);
            int cut = Math.Max(0, whole.Length - keep);
            dropped = Math.Max(dropped, cut);
            rows[b] = whole[cut..];
        }

        RewindTo(0);
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

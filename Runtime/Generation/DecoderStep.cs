using System.Runtime.CompilerServices;
using Microsoft.ML.OnnxRuntime.Tensors;
using Microsoft.ML.OnnxRuntime;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Native;

namespace OnnxGpt.Runtime.Generation;

// Shapes: B batch, T tokens fed this step, P cached tokens, S = P + T, V vocabulary, Cap slots per row,
// k positions that get logits.

/// <summary>
/// Runs one forward step of a generator's graph: writes <c>input_ids</c>, <c>position_ids</c> and
/// <c>attention_mask</c> into native buffers, binds them, the <see cref="KvCache"/> and the logits output through
/// one <see cref="OrtIoBinding"/>, and runs the session. Every tensor lives in memory this class owns, so a step
/// allocates nothing on the managed heap. Two ways to run, by the graph:
/// <list type="bullet">
/// <item><see cref="Run"/> (ping-pong cache): the sequence as the generator lays it out, slot arrays [b · Cap + s]
/// with left padding masked out; every row advances by the same slots.</item>
/// <item><see cref="RunRows"/> (<see cref="InPlace"/>, the fused graph): each row's real tokens, right-padded, each
/// row at its own length in a cache written in place; see there for how rows of different lengths are run.</item>
/// </list>
/// The methods every generated token runs (here, in <see cref="Generator"/>, <see cref="KvCache"/>, the sampler and
/// the native bindings) are marked <see cref="MethodImplOptions.AggressiveOptimization"/>: compiled optimized once,
/// before the first token, instead of being recompiled by tiered compilation in the background while the first
/// tokens decode, on the same cores ONNX Runtime's threads use (measured: 318 methods, 140–290 ms, 10–15 % slower
/// first 130 tokens; see docs/performance.md).
/// </summary>
internal sealed unsafe class DecoderStep : IDisposable
{
    /// <summary>What padding and placeholder positions hold: any valid id works, since the mask hides them.</summary>
    private const int PadToken = 0;

    private readonly GptModel _model;
    private readonly ModelSignature _signature;
    private readonly int _vocab;
    private readonly OrtIoBinding _binding;
    private readonly RunOptions _runOptions;
    private readonly IntPtr _memoryInfo;
    private readonly NativeName _idsName = new(GraphNames.InputIds);
    private readonly NativeName _maskName = new(GraphNames.AttentionMask);
    private readonly NativeName _positionsName = new(GraphNames.PositionIds);
    private readonly NativeName _branchName = new(GraphNames.UseCacheBranch);
    private readonly NativeName _logitsName = new(GraphNames.Logits);
    private readonly NativeName _keepName = new(GraphNames.LogitsToKeep);
    private readonly NativeBuffer<byte> _branch = new(1);
    private readonly NativeBuffer<long> _keep = new(1);

    private int _batch;
    private int _capacity;
    private NativeBuffer<long>? _ids;
    private NativeBuffer<long>? _positions;
    private NativeBuffer<long>? _mask;
    private NativeBuffer<float>? _logits;
    private NativeBuffer<float>? _wideLogits;
    private bool _disposed;

    // In place, per row: tokens fed this step, where they start in the row, how many positions they take.
    private int[] _feed = [];
    private int[] _start = [];
    private int[] _count = [];

    // In place: which cache view the binding holds (AllRows, a row, or Unbound) and for which buffers.
    private const int Unbound = -2;
    private const int AllRows = -1;
    private int _boundView = Unbound;
    private int _boundVersion;

    public DecoderStep(GptModel model, bool useCache)
    {
        _model = model;
        _signature = model.Signature;
        _vocab = model.Config.VocabSize;
        UsesCache = useCache && _signature.HasCache;
        InPlace = _signature.IsFused && _signature.HasCache && !_signature.CacheTensors.Any(t => t.Stacked);
        _memoryInfo = OrtMemoryInfo.DefaultInstance.DangerousGetHandle();
        _runOptions = new RunOptions();
        _binding = model.Session.CreateIoBinding();
    }

    /// <summary>Receives the logits after one token: its row, its index in the row's sequence (padding left out), the logits.</summary>
    public delegate void LogitsObserver(int row, int index, ReadOnlySpan<float> logits);

    /// <summary>Keys and values are kept between steps (else each step feeds the whole sequence).</summary>
    public bool UsesCache { get; }

    /// <summary>
    /// The fused graph: one cache buffer per tensor written in place, rows right-padded at their own lengths; run
    /// with <see cref="RunRows"/>.
    /// </summary>
    public bool InPlace { get; }

    /// <summary>The cache (null until <see cref="Allocate"/>, and for a graph without past inputs).</summary>
    public KvCache? Cache { get; private set; }

    /// <summary>Slots fed to the model per row, over every step so far (in place: the most any row got in each step).</summary>
    public long FedTokens { get; private set; }

    /// <summary>Tokens whose keys and values are cached; the next step feeds the slots after them.</summary>
    public int Cached => UsesCache ? Cache!.Length : 0;

    /// <summary>Sizes every buffer for <paramref name="batch"/> rows of <paramref name="capacity"/> slots, keeping the cache.</summary>
    public void Allocate(int batch, int capacity)
    {
        if (_batch != 0 && batch != _batch)
        {
            throw new InvalidOperationException($"the batch size is fixed at {_batch}.");
        }

        if (capacity <= _capacity)
        {
            return;
        }

        _batch = batch;
        long cells = (long)batch * capacity;
        Replace(ref _ids, cells);
        Replace(ref _positions, cells);
        Replace(ref _mask, cells);
        _logits ??= new NativeBuffer<float>((long)batch * _vocab);
        if (_feed.Length != batch)
        {
            _feed = new int[batch];
            _start = new int[batch];
            _count = new int[batch];
        }

        if (_signature.HasCache)
        {
            if (Cache is null)
            {
                Cache = new KvCache(_signature, _model.Config, batch, capacity, InPlace);
            }
            else
            {
                Cache.EnsureCapacity(capacity);
            }
        }

        _capacity = capacity;

        static void Replace(ref NativeBuffer<long>? buffer, long length)
        {
            buffer?.Dispose();
            buffer = null;
            buffer = new NativeBuffer<long>(length);
        }
    }

    /// <summary>Keeps the first <paramref name="length"/> cached tokens.</summary>
    public void Truncate(int length)
    {
        if (UsesCache)
        {
            Cache!.Truncate(Math.Min(length, Cache.Length));
        }
    }

    /// <summary>
    /// In place: keeps at most <c>rowLength[b] − 1</c> cached tokens of each row b (none of an empty row), so the
    /// next <see cref="RunRows"/> feeds each row's last token again and has fresh logits to sample from.
    /// </summary>
    public void TruncateRows(int[] rowLength)
    {
        var cache = Cache;
        if (cache is null)
        {
            return;
        }

        for (int b = 0; b < _batch; b++)
        {
            cache.SetRowLength(b, Math.Min(cache.GetRowLength(b), Math.Max(0, rowLength[b] - 1)));
        }
    }

    /// <summary>In place: whether some row has tokens not yet cached.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool HasPending(int[] rowLength)
    {
        for (int b = 0; b < _batch; b++)
        {
            if (rowLength[b] > Cache!.GetRowLength(b))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The logits of the last step for <paramref name="row"/>'s next token.</summary>
    public ReadOnlySpan<float> NextLogits(int row) => _logits!.Slice((long)row * _vocab, _vocab);

    /// <summary>
    /// Feeds slots [<see cref="Cached"/>, <paramref name="total"/>) (all of them without the cache) and leaves each
    /// row's next-token logits in <see cref="NextLogits"/>; <paramref name="observer"/>, if given, sees every fed
    /// token's logits. A slot of kind 0 is padding: masked out.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run(int[] slotToken, int[] slotPosition, byte[] slotKind, int total, LogitsObserver? observer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int past = Cached;
        int t = total - past;
        if (t <= 0 || total > _capacity)
        {
            throw new InvalidOperationException($"a step needs new tokens within the capacity: cached {past}, total {total}, capacity {_capacity}.");
        }

        IntPtr binding = _binding.DangerousGetHandle();
        Span<long> shape = stackalloc long[3];

        WriteInputs(slotToken, slotPosition, slotKind, past, t, total);
        BindTokenInputs(binding, _batch, t, total);

        if (_signature.HasUseCacheBranch)
        {
            *_branch.Pointer = past > 0 ? (byte)1 : (byte)0;
            shape[0] = 1;
            OrtNative.Bind(binding, output: false, _branchName, _memoryInfo, _branch.Pointer, 1, shape[..1], TensorElementType.Bool);
        }

        Cache?.Bind(binding, _memoryInfo, past, total);

        // One token per row (decoding) writes straight into the next-token logits; a prompt goes to a wider buffer.
        bool wide = t > 1 || observer is not null;
        var logits = wide ? WideLogits((long)_batch * t * _vocab) : _logits!;
        shape[0] = _batch;
        shape[1] = t;
        shape[2] = _vocab;
        OrtNative.Bind(binding, output: true, _logitsName, _memoryInfo, logits.Pointer, (long)_batch * t * _vocab * sizeof(float), shape, TensorElementType.Float);

        RunSession(t, past);
        FedTokens += t;
        if (UsesCache)
        {
            Cache!.Commit(total);
        }

        if (wide)
        {
            for (int b = 0; b < _batch; b++)
            {
                logits.Slice(((long)b * t + t - 1) * _vocab, _vocab).CopyTo(_logits!.Slice((long)b * _vocab, _vocab));
                if (observer is not null)
                {
                    for (int i = 0; i < t; i++)
                    {
                        int at = b * _capacity + past + i;
                        if (slotKind[at] != 0)
                        {
                            observer(b, slotPosition[at], logits.Slice(((long)b * t + i) * _vocab, _vocab));
                        }
                    }
                }
            }

            if (UsesCache)
            {
                // A prompt's logits are needed once; keep only the row per sequence that decoding uses.
                _wideLogits!.Dispose();
                _wideLogits = null;
            }
        }
    }

    /// <summary>
    /// In place (the fused graph): feeds each row its tokens not yet cached, at most <paramref name="maxTokens"/> of
    /// them (0: as many as keep one step's memory under <see cref="MaxStepFloats"/>), and leaves each row's
    /// next-token logits in <see cref="NextLogits"/>. Row b's tokens are <c>rowTokens[b][0 .. rowLength[b])</c>,
    /// its position ids their indices; <paramref name="observer"/>, if given, sees every fed token's logits.
    /// <para>
    /// GroupQueryAttention places row b's new tokens at its cached length, which the mask gives (its width is the
    /// longest row after the step, row b has 1 for its tokens, then 0). A row with nothing to feed takes its last
    /// token again at its own position (same key and value rewritten, fresh logits), an empty row a placeholder
    /// at position 0 that it does not keep. The operator takes several new tokens per row only on an empty cache
    /// (a right-padded prompt) or for one row; so when rows that already hold tokens get several each, they are
    /// run one at a time over their own (1, H, Cap, D) part of the cache.
    /// </para>
    /// <para>
    /// Logits: <c>num_logits_to_keep</c> is the fewest last positions that still hold every row's last token:
    /// 1 when decoding and for rows of equal length (so a prompt projects one position per row to the
    /// vocabulary), T − (shortest row) + 1 for a right-padded prompt of unequal rows; 0 (every position) with an observer.
    /// </para>
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void RunRows(int[][] rowTokens, int[] rowLength, int maxTokens, LogitsObserver? observer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var cache = Cache ?? throw new InvalidOperationException("RunRows needs the in-place cache: call Allocate first.");
        int longest = 0, shortest = int.MaxValue;
        bool anyCached = false;
        for (int b = 0; b < _batch; b++)
        {
            int pending = rowLength[b] - cache.GetRowLength(b);
            longest = Math.Max(longest, pending);
            shortest = Math.Min(shortest, pending);
            anyCached |= cache.GetRowLength(b) > 0;
        }

        if (maxTokens <= 0)
        {
            maxTokens = StepTokens(observer is not null || !_signature.HasLogitsToKeep || shortest != longest);
        }

        int t = 0;
        for (int b = 0; b < _batch; b++)
        {
            _feed[b] = Math.Min(rowLength[b] - cache.GetRowLength(b), maxTokens);
            t = Math.Max(t, _feed[b]);
        }

        FedTokens += Math.Max(t, 1);   // the most any row gets (a row with nothing new runs its last token again)
        if (t <= 1 || !anyCached || _batch == 1)
        {
            RunBatch(rowTokens, Math.Max(t, 1), observer);
            return;
        }

        for (int b = 0; b < _batch; b++)
        {
            if (_feed[b] > 0)
            {
                RunRow(b, rowTokens[b], observer);
            }
        }
    }

    /// <summary>In place: forgets every row's cached tokens (the next step recomputes from the start).</summary>
    public void ForgetRows()
    {
        for (int b = 0; b < _batch; b++)
        {
            Cache!.SetRowLength(b, 0);
        }
    }

    /// <summary>Most floats one step's scores or logits may take (64 MiB): longer prompts go in several steps.</summary>
    public const long MaxStepFloats = 1L << 24;

    /// <summary>
    /// Tokens per row for one in-place step: attention scores (B, H, T, Cap) within <see cref="MaxStepFloats"/>, and
    /// logits (B, T, V) too when every position may get them; at least 16.
    /// </summary>
    private int StepTokens(bool logitsForEveryPosition)
    {
        long tokens = MaxStepFloats / ((long)_batch * _model.Config.Heads * _capacity);
        if (logitsForEveryPosition)
        {
            tokens = Math.Min(tokens, MaxStepFloats / ((long)_batch * _vocab));
        }

        return (int)Math.Clamp(tokens, 16, int.MaxValue);
    }

    /// <summary>One run over the whole batch: T = 1 (decoding), an empty cache (a right-padded prompt), or one row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunBatch(int[][] rowTokens, int t, LogitsObserver? observer)
    {
        var cache = Cache!;
        int total = 0, shortest = t;
        for (int b = 0; b < _batch; b++)
        {
            int length = cache.GetRowLength(b);
            (_start[b], _count[b]) = _feed[b] > 0 ? (length, _feed[b]) : (Math.Max(0, length - 1), 1);
            total = Math.Max(total, _start[b] + _count[b]);
            shortest = Math.Min(shortest, _count[b]);
        }

        for (int b = 0; b < _batch; b++)
        {
            WriteRowInputs(b, rowTokens[b], _start[b], _count[b], t, total, placeholder: _feed[b] == 0 && cache.GetRowLength(b) == 0);
        }

        BindCacheView(AllRows);
        int keep = observer is not null || !_signature.HasLogitsToKeep ? t : t - shortest + 1;
        var logits = BindInputsAndLogits(_batch, t, total, keep, observer is not null, _logits!);
        RunSession(t, total - t);

        for (int b = 0; b < _batch; b++)
        {
            int count = _count[b];
            if (keep > 1)
            {
                // Row b's last token sits at index count − 1 of its T positions, of which the last `keep` came back.
                long last = (long)b * keep + (count - 1) - (t - keep);
                logits.Slice(last * _vocab, _vocab).CopyTo(_logits!.Slice((long)b * _vocab, _vocab));
            }

            if (_feed[b] > 0)
            {
                if (observer is not null)
                {
                    for (int i = 0; i < count; i++)
                    {
                        observer(b, _start[b] + i, logits.Slice(((long)b * t + i) * _vocab, _vocab));
                    }
                }

                cache.SetRowLength(b, _start[b] + count);
            }
        }

        ReleaseWideLogits();
    }

    /// <summary>One row's several new tokens after its cached ones, over that row's part of the cache.</summary>
    private void RunRow(int b, int[] tokens, LogitsObserver? observer)
    {
        var cache = Cache!;
        int start = cache.GetRowLength(b), t = _feed[b], total = start + t;
        WriteRowInputs(0, tokens, start, t, t, total, placeholder: false);

        BindCacheView(b);
        int keep = observer is not null || !_signature.HasLogitsToKeep ? t : 1;
        var logits = BindInputsAndLogits(1, t, total, keep, observer is not null, _logits!, (long)b * _vocab);
        RunSession(t, start);
        long first = keep == 1 ? (long)b * _vocab : 0;   // where this row's logits begin in the buffer they went to
        if (keep > 1)
        {
            logits.Slice((long)(keep - 1) * _vocab, _vocab).CopyTo(_logits!.Slice((long)b * _vocab, _vocab));
        }

        if (observer is not null)
        {
            for (int i = 0; i < t; i++)
            {
                observer(b, start + i, logits.Slice(first + (long)i * _vocab, _vocab));
            }
        }

        cache.SetRowLength(b, total);
        ReleaseWideLogits();
    }

    /// <summary>
    /// Writes one row of the in-place step's inputs at <paramref name="at"/> in the (rows, T) and (rows, S) buffers:
    /// ids and positions of its <paramref name="count"/> tokens from <paramref name="start"/>, padding after them (a
    /// placeholder row is padding throughout), and a mask of ones over its first start + count positions.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void WriteRowInputs(int at, int[] tokens, int start, int count, int t, int total, bool placeholder)
    {
        for (int i = 0; i < t; i++)
        {
            bool real = i < count && !placeholder;
            WriteIndex(_ids!, _signature.InputIdsType, (long)at * t + i, real ? tokens[start + i] : PadToken);
            if (_signature.PositionIdsType is { } positionType)
            {
                WriteIndex(_positions!, positionType, (long)at * t + i, i < count ? start + i : 0);
            }
        }

        if (_signature.AttentionMaskType is { } maskType)
        {
            for (int s = 0; s < total; s++)
            {
                WriteIndex(_mask!, maskType, (long)at * total + s, s < start + count ? 1 : 0);
            }
        }
    }

    /// <summary>
    /// Binds input_ids and position_ids (rows, T), attention_mask (rows, S), num_logits_to_keep and the logits
    /// output (rows, k, V): straight into the next-token logits at <paramref name="offset"/> when k is 1, else into
    /// the wide buffer, which it returns.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private NativeBuffer<float> BindInputsAndLogits(int rows, int t, int total, int keep, bool everyPosition, NativeBuffer<float> next, long offset = 0)
    {
        IntPtr binding = _binding.DangerousGetHandle();
        BindTokenInputs(binding, rows, t, total);

        if (_signature.HasLogitsToKeep)
        {
            *_keep.Pointer = everyPosition ? 0 : keep;
            OrtNative.Bind(binding, output: false, _keepName, _memoryInfo, _keep.Pointer, sizeof(long), [], TensorElementType.Int64);
        }

        var logits = keep == 1 ? next : WideLogits((long)rows * keep * _vocab);
        Span<long> shape = [rows, keep, _vocab];
        OrtNative.Bind(binding, output: true, _logitsName, _memoryInfo, logits.Pointer + (keep == 1 ? offset : 0),
            (long)rows * keep * _vocab * sizeof(float), shape, TensorElementType.Float);
        return logits;
    }

    /// <summary>Binds the in-place cache over the whole batch or one row, unless the binding already holds that view.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void BindCacheView(int view)
    {
        var cache = Cache!;
        if (_boundView != view || _boundVersion != cache.Version)
        {
            cache.BindInPlace(_binding.DangerousGetHandle(), _memoryInfo, view);
            _boundView = view;
            _boundVersion = cache.Version;
        }
    }

    /// <summary>A prompt's wide logits are needed once; with the cache, free them rather than keep B·T·V floats.</summary>
    private void ReleaseWideLogits()
    {
        if (UsesCache && _wideLogits is not null)
        {
            _wideLogits.Dispose();
            _wideLogits = null;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunSession(int t, int past)
    {
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
    }

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
        Cache?.Dispose();
        _ids?.Dispose();
        _positions?.Dispose();
        _mask?.Dispose();
        _branch.Dispose();
        _keep.Dispose();
        _keepName.Dispose();
        _logits?.Dispose();
        _wideLogits?.Dispose();
        _idsName.Dispose();
        _maskName.Dispose();
        _positionsName.Dispose();
        _branchName.Dispose();
        _logitsName.Dispose();
    }

    private NativeBuffer<float> WideLogits(long needed)
    {
        if (_wideLogits is null || _wideLogits.Length < needed)
        {
            // Without the cache every step feeds the whole sequence: size for the capacity once, not per step.
            _wideLogits?.Dispose();
            _wideLogits = null;
            _wideLogits = new NativeBuffer<float>(UsesCache ? needed : Math.Max(needed, (long)_batch * _capacity * _vocab));
        }

        return _wideLogits;
    }

    /// <summary>input_ids and position_ids (B, T) from slots [past, total); attention_mask (B, S) from [0, total).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void WriteInputs(int[] slotToken, int[] slotPosition, byte[] slotKind, int past, int t, int total)
    {
        for (int b = 0; b < _batch; b++)
        {
            int row = b * _capacity;
            for (int i = 0; i < t; i++)
            {
                WriteIndex(_ids!, _signature.InputIdsType, (long)b * t + i, slotToken[row + past + i]);
                if (_signature.PositionIdsType is { } positionType)
                {
                    WriteIndex(_positions!, positionType, (long)b * t + i, slotPosition[row + past + i]);
                }
            }

            if (_signature.AttentionMaskType is { } maskType)
            {
                for (int s = 0; s < total; s++)
                {
                    WriteIndex(_mask!, maskType, (long)b * total + s, slotKind[row + s] == 0 ? 0 : 1);
                }
            }
        }
    }

    /// <summary>Writes an index (or mask value) as the graph's element type: int64, int32 or float.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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

    /// <summary>Binds <c>input_ids</c> and <c>position_ids</c> (rows, T) and <c>attention_mask</c> (rows, total), as the graph has them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void BindTokenInputs(IntPtr binding, int rows, int t, int total)
    {
        Span<long> shape = [rows, t];
        BindIndexInput(binding, _idsName, _ids!, _signature.InputIdsType, shape);
        if (_signature.PositionIdsType is { } positionType)
        {
            BindIndexInput(binding, _positionsName, _positions!, positionType, shape);
        }

        if (_signature.AttentionMaskType is { } maskType)
        {
            shape[1] = total;
            BindIndexInput(binding, _maskName, _mask!, maskType, shape);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void BindIndexInput(IntPtr binding, NativeName name, NativeBuffer<long> buffer, TensorElementType type, ReadOnlySpan<long> shape)
    {
        long count = 1;
        foreach (var d in shape)
        {
            count *= d;
        }

        int size = type == TensorElementType.Int64 ? sizeof(long) : sizeof(int);
        OrtNative.Bind(binding, output: false, name, _memoryInfo, buffer.Pointer, count * size, shape, type);
    }
}

using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Native;

namespace OnnxGpt.Runtime.Generation;

// Shapes: R rows in one run, T tokens fed per row this step, P cached tokens, S = P + T, V vocabulary, Cap capacity.

/// <summary>
/// One forward step of the graph over a table of sequence slots: the one abstraction between the schedulers
/// (<see cref="Generator"/>, the batching engine) and ONNX Runtime. The scheduler says how many of each slot's
/// pending tokens to feed (<see cref="Run"/>); the step writes <c>input_ids</c>, <c>position_ids</c> and
/// <c>attention_mask</c> into native buffers, binds them, its <see cref="KvCache"/> and the logits through one
/// <see cref="OrtIoBinding"/>, runs the session, moves each fed sequence's <see cref="Sequence.Cached"/> on and
/// leaves its next-token logits in <see cref="Logits"/>. One implementation per cache layout, each owning its
/// buffers, binding, layout and rewind rule, none knowing anything of sampling:
/// <list type="bullet">
/// <item><see cref="ConcatenatingStep"/> (portable graphs): present = past ⊕ new, rows share one length, left-padded
/// and masked.</item>
/// <item><see cref="InPlaceStep"/> (the fused graph's GroupQueryAttention): one buffer per tensor written in place,
/// each row at its own length.</item>
/// </list>
/// Every tensor lives in memory the step or its cache owns, so a step allocates nothing on the managed heap. The
/// methods every generated token runs are marked <see cref="MethodImplOptions.AggressiveOptimization"/>: compiled
/// optimized once, before the first token, instead of being recompiled by tiered compilation in the background while
/// the first tokens decode, on the same cores ONNX Runtime's threads use (measured: 318 methods, 140–290 ms, 10–15 %
/// slower first 130 tokens; see docs/performance.md).
/// </summary>
internal abstract unsafe class DecoderStep : IDisposable
{
    /// <summary>What padding and placeholder positions hold: any valid id works, since the mask hides them.</summary>
    protected const int PadToken = 0;

    /// <summary>Most floats one step's scores or logits may take (64 MiB): longer prompts go in several steps.</summary>
    public const long MaxStepFloats = 1L << 24;

    private readonly OrtIoBinding _binding;
    private readonly OrtIoBinding? _firstStepBinding;
    private readonly RunOptions _runOptions;
    private readonly NativeName _idsName;
    private readonly NativeName _maskName;
    private readonly NativeName _positionsName;
    private readonly NativeName _branchName = new(GraphNames.UseCacheBranch);
    private readonly NativeName _logitsName;
    private readonly NativeName _keepName = new(GraphNames.LogitsToKeep);
    private readonly NativeBuffer<byte> _branch = new(1);
    private readonly NativeBuffer<long> _keep = new(1);
    private NativeBuffer<long>? _ids;
    private NativeBuffer<long>? _positions;
    private NativeBuffer<long>? _mask;
    private NativeBuffer<float>? _wideLogits;
    private volatile bool _interrupted;
    private float* _logitsTarget;
    private long _logitsCount;
    private bool _firstStep;
    private bool _disposed;

    protected DecoderStep(GptModel model, Sequence?[] rows, bool useCache)
    {
        Model = model;
        Signature = model.Signature;
        Vocab = model.Config.VocabSize;
        SlotTable = rows;
        UsesCache = useCache && Signature.HasCache;
        MemoryInfo = OrtMemoryInfo.DefaultInstance.DangerousGetHandle();
        var names = Signature.Names;
        _idsName = new NativeName(names.InputIds);
        _maskName = new NativeName(names.AttentionMask);
        _positionsName = new NativeName(names.PositionIds);
        _logitsName = new NativeName(names.Logits);
        _runOptions = new RunOptions();
        _binding = model.Session.CreateIoBinding();
        _firstStepBinding = model.FirstStepSession?.CreateIoBinding();
        NextLogits = new NativeBuffer<float>((long)rows.Length * Vocab);
    }

    /// <summary>Receives the logits after one fed token: its row, its index in the row's sequence, the logits.</summary>
    public delegate void LogitsObserver(int row, int index, ReadOnlySpan<float> logits);

    /// <summary>Picks the layout the model's graph needs: in place for the fused graph, concatenating otherwise.</summary>
    /// <param name="model">The model.</param>
    /// <param name="rows">The slot table the scheduler fills (its length is the batch size); the step reads it on every call.</param>
    /// <param name="capacity">Tokens per row to size the buffers for (they grow with <see cref="Reserve"/>).</param>
    /// <param name="useCache">Keep keys and values between steps (false: the scheduler feeds everything each time).</param>
    public static DecoderStep Create(GptModel model, Sequence?[] rows, int capacity, bool useCache) =>
        SupportsInPlace(model.Signature)
            ? new InPlaceStep(model, rows, capacity, useCache)
            : new ConcatenatingStep(model, rows, capacity, useCache);

    /// <summary>Whether the graph writes its cache in place (the fused graph with separate key and value tensors).</summary>
    public static bool SupportsInPlace(ModelSignature signature) =>
        signature.IsFused && signature.HasCache && !signature.CacheTensors.Any(t => t.Stacked);

    /// <summary>Keys and values are kept between steps (else the scheduler feeds the whole sequence each time).</summary>
    public bool UsesCache { get; }

    /// <summary>The cache (null for a graph without past inputs).</summary>
    public KvCache? Cache { get; protected set; }

    /// <summary>Rows in the slot table.</summary>
    public int Rows => SlotTable.Length;

    /// <summary>Tokens per row the input buffers (and the cache) hold now.</summary>
    public int Capacity { get; private set; }

    protected GptModel Model { get; }

    protected ModelSignature Signature { get; }

    protected int Vocab { get; }

    /// <summary>The scheduler's slot table: row b holds <c>SlotTable[b]</c>, or nothing.</summary>
    protected Sequence?[] SlotTable { get; }

    /// <summary>The native <c>OrtMemoryInfo*</c> of host memory, for the token inputs and the logits.</summary>
    protected IntPtr MemoryInfo { get; }

    /// <summary>The binding of the session the next run uses (see <see cref="SelectSession"/>).</summary>
    protected IntPtr Binding => (_firstStep ? _firstStepBinding! : _binding).DangerousGetHandle();

    /// <summary>
    /// The next run goes to the first-step decoder of a pair (Optimum's <c>decoder_model.onnx</c>, which takes no past
    /// inputs and binds only the present outputs), since it starts from an empty cache.
    /// </summary>
    protected bool RunsFirstStep => _firstStep;

    /// <summary>
    /// Chooses the session for a run over <paramref name="past"/> cached tokens: a model split in two (Optimum's pair)
    /// runs its first-step decoder when nothing is cached and the decoder with past otherwise; every other model has
    /// one session.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    protected void SelectSession(int past) => _firstStep = past == 0 && _firstStepBinding is not null;

    /// <summary>Each row's next-token logits, (rows, V).</summary>
    protected NativeBuffer<float> NextLogits { get; }

    /// <summary>
    /// Feeds row b its next <c>feed[b]</c> pending tokens (0: none), in as few runs of the session as the layout
    /// allows, and leaves each fed row's next-token logits in <see cref="Logits"/>; a row not fed keeps its logits. A
    /// step may feed fewer tokens than asked to bound its memory: <paramref name="feed"/> then says how many it fed.
    /// <paramref name="observer"/>, if given, sees every fed token's logits.
    /// </summary>
    public abstract void Run(int[] feed, LogitsObserver? observer);

    /// <summary>
    /// After the scheduler rewound sequences (<see cref="Sequence.RewindTo"/>): applies the layout's rewind rule, so
    /// that each row keeps at most all but its last token cached (the next step feeds that token again and has logits).
    /// </summary>
    public abstract void Rewind();

    /// <summary>
    /// From another thread: stops the run in flight at its next operator (ONNX Runtime's terminate flag). That
    /// <see cref="Run"/> then throws <see cref="StepInterruptedException"/> having moved no sequence on (a row's new
    /// keys and values count as cached only once the run has finished), so feeding the same rows again computes the
    /// same values over whatever the stopped run had written; their logits are those of that next run. Every run
    /// fails so until <see cref="Resume"/>.
    /// </summary>
    public void Interrupt()
    {
        _interrupted = true;
        _runOptions.Terminate = true;
    }

    /// <summary>Lets runs go on after <see cref="Interrupt"/>.</summary>
    public void Resume()
    {
        _runOptions.Terminate = false;
        _interrupted = false;
    }

    /// <summary>
    /// Row <paramref name="destination"/> takes row <paramref name="source"/>'s place (a beam forking, a sample row
    /// starting from a shared prompt): after the scheduler made the destination's sequence a copy of the source's
    /// (<see cref="Sequence.CopyFrom"/>, whose <see cref="Sequence.Cached"/> says how many leading positions the
    /// destination's cache already holds alike), this copies the source's cache for the positions after those, and
    /// its next-token logits, so that the destination computes from here exactly what the source would. A row left
    /// where it is costs nothing; a copied one costs (source's cached − destination's kept) positions per layer,
    /// key/value head and tensor.
    /// </summary>
    /// <exception cref="InvalidOperationException">The cache lives in device memory, which C# cannot copy.</exception>
    public void CopyRow(int source, int destination)
    {
        var from = SlotTable[source] ?? throw new ArgumentException($"row {source} holds no sequence.", nameof(source));
        var to = SlotTable[destination] ?? throw new ArgumentException($"row {destination} holds no sequence.", nameof(destination));
        if (source == destination)
        {
            return;
        }

        if (UsesCache && Cache is not null)
        {
            long start = Stopwatch.GetTimestamp();
            CopyCache(source, destination, to.Cached, from.Cached);
            CopiedPositions += Math.Max(0, from.Cached - to.Cached);
            CopyTicks += Stopwatch.GetTimestamp() - start;
        }

        Logits(source).CopyTo(Logits(destination));
        to.Cached = from.Cached;
    }

    /// <summary>Cache positions <see cref="CopyRow"/> has copied so far (each: every layer's keys and values of every head).</summary>
    public long CopiedPositions { get; private set; }

    /// <summary>The time <see cref="CopyRow"/> has spent copying the cache so far (Stopwatch ticks).</summary>
    public long CopyTicks { get; private set; }

    /// <summary>Whether <see cref="CopyRow"/> can copy this step's cache (it lives in host memory, or there is none).</summary>
    public bool CanCopyRows => Cache is null || !UsesCache || Cache.IsHostAccessible;

    /// <summary>Copies the cache of row <paramref name="source"/>'s tokens [<paramref name="from"/>, <paramref name="to"/>) to row <paramref name="destination"/>.</summary>
    protected abstract void CopyCache(int source, int destination, int from, int to);

    /// <summary>Sizes the buffers for <paramref name="capacity"/> tokens per row, keeping the cache.</summary>
    public void Reserve(int capacity)
    {
        if (capacity <= Capacity)
        {
            return;
        }

        long cells = (long)Rows * capacity;
        Replace(ref _ids, cells);
        Replace(ref _positions, cells);
        Replace(ref _mask, cells);
        Capacity = capacity;
        OnReserve(capacity);

        static void Replace(ref NativeBuffer<long>? buffer, long length)
        {
            buffer?.Dispose();
            buffer = null;
            buffer = new NativeBuffer<long>(length);
        }
    }

    /// <summary>Row <paramref name="row"/>'s next-token logits from the last step that fed it (writable: a logits processor may change them).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public Span<float> Logits(int row) => NextLogits.Slice((long)row * Vocab, Vocab);

    /// <summary>Grows the layout's own buffers (and the cache) to <paramref name="capacity"/> tokens per row.</summary>
    protected abstract void OnReserve(int capacity);

    /// <summary>Creates the cache in the layout's shape, or grows it to <paramref name="capacity"/> tokens per row.</summary>
    protected void ReserveCache(int capacity, bool inPlace)
    {
        if (Cache is null)
        {
            Cache = new KvCache(Model, Rows, capacity, inPlace);
        }
        else
        {
            Cache.EnsureCapacity(capacity);
        }
    }

    /// <summary>Writes an index (or mask value) at <paramref name="index"/> of the ids, positions or mask buffer, as the graph's element type.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    protected void WriteId(long index, int value) => WriteIndex(_ids!, Signature.InputIdsType, index, value);

    /// <inheritdoc cref="WriteId"/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    protected void WritePosition(long index, int value)
    {
        if (Signature.PositionIdsType is { } type)
        {
            WriteIndex(_positions!, type, index, value);
        }
    }

    /// <inheritdoc cref="WriteId"/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    protected void WriteMask(long index, int value)
    {
        if (Signature.AttentionMaskType is { } type)
        {
            WriteIndex(_mask!, type, index, value);
        }
    }

    /// <summary>
    /// Binds input_ids and position_ids (rows, T), attention_mask (rows, S), <c>use_cache_branch</c> and
    /// <c>num_logits_to_keep</c> where the graph has them, and the logits output (rows, k, V) at
    /// <paramref name="logits"/> + <paramref name="offset"/> floats.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    protected void BindInputsAndLogits(int rows, int t, int total, int past, int keep, NativeBuffer<float> logits, long offset)
    {
        IntPtr binding = Binding;
        Span<long> shape = [rows, t];
        // The Model Zoo's GPT-2 takes its ids as (rows, 1, T) and gives logits as (rows, 1, k, V): the same memory.
        bool zoo = Signature.InputIdsRank == 3;
        Span<long> zooShape = [rows, 1, t];
        BindIndexInput(binding, _idsName, _ids!, Signature.InputIdsType, zoo ? zooShape : shape);
        if (Signature.PositionIdsType is { } positionType)
        {
            BindIndexInput(binding, _positionsName, _positions!, positionType, shape);
        }

        if (Signature.AttentionMaskType is { } maskType)
        {
            shape[1] = total;
            BindIndexInput(binding, _maskName, _mask!, maskType, shape);
        }

        if (Signature.HasUseCacheBranch && !_firstStep)
        {
            *_branch.Pointer = past > 0 ? (byte)1 : (byte)0;
            OrtNative.Bind(binding, output: false, _branchName, MemoryInfo, _branch.Pointer, 1, [1], TensorElementType.Bool);
        }

        if (Signature.HasLogitsToKeep)
        {
            *_keep.Pointer = keep == t ? 0 : keep;
            OrtNative.Bind(binding, output: false, _keepName, MemoryInfo, _keep.Pointer, sizeof(long), [], TensorElementType.Int64);
        }

        long count = (long)rows * keep * Vocab;
        if (Signature.CopiesLogits)
        {
            // Declared with fixed sizes, or float16: ONNX Runtime allocates the logits as computed and RunSession copies them here.
            (_firstStep ? _firstStepBinding! : _binding).BindOutputToDevice(Signature.Names.Logits, OrtMemoryInfo.DefaultInstance);
            _logitsTarget = logits.Pointer + offset;
            _logitsCount = count;
            return;
        }

        Span<long> logitsShape = [rows, keep, Vocab];
        Span<long> zooLogitsShape = [rows, 1, keep, Vocab];
        OrtNative.Bind(binding, output: true, _logitsName, MemoryInfo, logits.Pointer + offset,
            count * sizeof(float), zoo ? zooLogitsShape : logitsShape, TensorElementType.Float);
    }

    /// <summary>
    /// A buffer of at least <paramref name="floats"/> logits (and never less than one row per slot) for a step whose
    /// logits do not go straight into <see cref="Logits"/>.
    /// </summary>
    protected NativeBuffer<float> WideLogits(long floats)
    {
        if (_wideLogits is null || _wideLogits.Length < floats)
        {
            _wideLogits?.Dispose();
            _wideLogits = null;
            _wideLogits = new NativeBuffer<float>(Math.Max(floats, (long)Rows * Vocab));
        }

        return _wideLogits;
    }

    /// <summary>A prompt's wide logits are needed once: free them rather than keep rows·T·V floats.</summary>
    protected void ReleaseWideLogits(long keepUpTo)
    {
        if (_wideLogits is not null && _wideLogits.Length > keepUpTo)
        {
            _wideLogits.Dispose();
            _wideLogits = null;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    protected void RunSession(int t, int past)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Model.EnterRun();
        try
        {
            if (_firstStep)
            {
                Model.FirstStepSession!.RunWithBinding(_runOptions, _firstStepBinding!);
            }
            else
            {
                Model.Session.RunWithBinding(_runOptions, _binding);
            }

            if (Signature.CopiesLogits)
            {
                CopyDeviceLogits();
            }
        }
        catch (OnnxRuntimeException e) when (_interrupted)
        {
            throw new StepInterruptedException($"{Model.ModelPath}: a step of {t} new and {past} cached tokens was interrupted.", e);
        }
        catch (OnnxRuntimeException e)
        {
            throw new OnnxGptException(
                $"{(_firstStep ? Model.Layout.FirstStepPath : Model.ModelPath)}: ONNX Runtime failed on a step of {t} new and {past} cached tokens: {e.Message}", e);
        }
        finally
        {
            Model.ExitRun();
        }
    }

    /// <summary>
    /// Copies the logits ONNX Runtime allocated (see <see cref="ModelSignature.CopiesLogits"/>) to where the step wants
    /// them, widening float16 ones.
    /// </summary>
    private void CopyDeviceLogits()
    {
        using var outputs = (_firstStep ? _firstStepBinding! : _binding).GetOutputValues();
        var value = outputs[0];
        long found = value.GetTensorTypeAndShape().ElementCount;
        if (found != _logitsCount)
        {
            throw new OnnxGptException($"{Model.ModelPath}: the graph's logits hold {found} values; expected {_logitsCount} (rows × tokens × vocabulary).");
        }

        var target = new Span<float>(_logitsTarget, checked((int)_logitsCount));
        if (Signature.LogitsElementType == TensorElementType.Float16)
        {
            var halves = MemoryMarshal.Cast<Float16, Half>(value.GetTensorDataAsSpan<Float16>());
            for (int i = 0; i < target.Length; i++)
            {
                target[i] = (float)halves[i];
            }
        }
        else
        {
            value.GetTensorDataAsSpan<float>().CopyTo(target);
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
        if (_firstStepBinding is { IsInvalid: false })
        {
            OrtNative.ClearBindings(_firstStepBinding.DangerousGetHandle());
        }

        _firstStepBinding?.Dispose();
        _runOptions.Dispose();
        Cache?.Dispose();
        _ids?.Dispose();
        _positions?.Dispose();
        _mask?.Dispose();
        _branch.Dispose();
        _keep.Dispose();
        NextLogits.Dispose();
        _wideLogits?.Dispose();
        _idsName.Dispose();
        _maskName.Dispose();
        _positionsName.Dispose();
        _branchName.Dispose();
        _logitsName.Dispose();
        _keepName.Dispose();
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

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void BindIndexInput(IntPtr binding, NativeName name, NativeBuffer<long> buffer, TensorElementType type, ReadOnlySpan<long> shape)
    {
        long count = 1;
        foreach (var d in shape)
        {
            count *= d;
        }

        int size = type == TensorElementType.Int64 ? sizeof(long) : sizeof(int);
        OrtNative.Bind(binding, output: false, name, MemoryInfo, buffer.Pointer, count * size, shape, type);
    }
}

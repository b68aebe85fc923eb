using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using OnnxGpt.Model;
using OnnxGpt.Native;

namespace OnnxGpt.Generation;

// Shapes: B batch, T tokens fed this step, P cached tokens, S = P + T, V vocabulary, Cap slots per row.

/// <summary>
/// Runs one forward step of a generator's graph: writes <c>input_ids</c>, <c>position_ids</c> and
/// <c>attention_mask</c> into native buffers, binds them, the <see cref="KvCache"/> and the logits output through
/// one <see cref="OrtIoBinding"/>, and runs the session. Every tensor lives in memory this class owns, so a step
/// allocates nothing on the managed heap. The sequence itself (tokens, positions, padding) is the generator's,
/// passed in as slot arrays laid out [b · Cap + s].
/// </summary>
internal sealed unsafe class DecoderStep : IDisposable
{
    private readonly GptModel _model;
    private readonly ModelSignature _signature;
    private readonly int _vocab;
    private readonly OrtIoBinding _binding;
    private readonly RunOptions _runOptions;
    private readonly IntPtr _memoryInfo;
    private readonly NativeName _idsName = new(ModelSignature.InputIds);
    private readonly NativeName _maskName = new(ModelSignature.AttentionMask);
    private readonly NativeName _positionsName = new(ModelSignature.PositionIds);
    private readonly NativeName _branchName = new(ModelSignature.UseCacheBranch);
    private readonly NativeName _logitsName = new(ModelSignature.Logits);
    private readonly NativeBuffer<byte> _branch = new(1);

    private int _batch;
    private int _capacity;
    private NativeBuffer<long>? _ids;
    private NativeBuffer<long>? _positions;
    private NativeBuffer<long>? _mask;
    private NativeBuffer<float>? _logits;
    private NativeBuffer<float>? _wideLogits;
    private bool _disposed;

    public DecoderStep(GptModel model, bool useCache)
    {
        _model = model;
        _signature = model.Signature;
        _vocab = model.Config.VocabSize;
        UsesCache = useCache && _signature.HasCache;
        _memoryInfo = OrtMemoryInfo.DefaultInstance.DangerousGetHandle();
        _runOptions = new RunOptions();
        _binding = model.Session.CreateIoBinding();
    }

    /// <summary>Receives the logits of one token: its row, its index in the sequence, the logits.</summary>
    public delegate void LogitsObserver(int row, int index, ReadOnlySpan<float> logits);

    /// <summary>Keys and values are kept between steps (else each step feeds the whole sequence).</summary>
    public bool UsesCache { get; }

    /// <summary>The cache (null until <see cref="Allocate"/>, and for a graph without past inputs).</summary>
    public KvCache? Cache { get; private set; }

    /// <summary>Slots fed to the model per row, over every step so far.</summary>
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
        if (_signature.HasCache)
        {
            if (Cache is null)
            {
                Cache = new KvCache(_signature, _model.Config, batch, capacity);
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

    /// <summary>The logits of the last step for <paramref name="row"/>'s next token.</summary>
    public ReadOnlySpan<float> NextLogits(int row) => _logits!.Slice((long)row * _vocab, _vocab);

    /// <summary>
    /// Feeds slots [<see cref="Cached"/>, <paramref name="total"/>) (all of them without the cache) and leaves each
    /// row's next-token logits in <see cref="NextLogits"/>; <paramref name="observer"/>, if given, sees every fed
    /// token's logits. A slot of kind 0 is padding: masked out.
    /// </summary>
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
                        observer(b, past + i, logits.Slice(((long)b * t + i) * _vocab, _vocab));
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

        int size = type == TensorElementType.Int64 ? sizeof(long) : sizeof(int);
        OrtNative.Bind(binding, output: false, name, _memoryInfo, buffer.Pointer, count * size, shape, type);
    }
}

using System.Runtime.CompilerServices;
using Microsoft.ML.OnnxRuntime.Tensors;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Native;

namespace OnnxGpt.Runtime.Generation;

// Shapes: B batch, H heads, P cached (past) tokens, S = P + T tokens after a step, D head size, Cap capacity.

/// <summary>
/// The keys and values of every layer, in memory this class owns, laid out as the graph's past inputs want them.
/// It alone knows the buffer layout and the layer-indexed names. Two layouts:
/// <list type="bullet">
/// <item><b>Ping-pong</b> (portable graphs, present = past ⊕ new): each cache tensor (Optimum: a layer's key and its
/// value, each (B, H, P, D); ORT GPT-2: a layer's stacked (2, B, H, P, D)) has two buffers of Cap tokens. A step
/// feeds the past as a tensor over the first <c>B·H·P·D</c> floats of one buffer, laid out contiguously for exactly
/// P tokens, and binds the present output (P + T tokens, also contiguous) to the other buffer, so ONNX Runtime
/// writes it straight into our memory; then the two swap. Every step rewrites the whole cache once (O(context)
/// copying), but nothing is allocated per token. Rows share one length: padding is masked.</item>
/// <item><b>In place</b> (<see cref="IsInPlace"/>, the fused graph's GroupQueryAttention): one buffer per tensor of
/// shape (B, H, Cap, D), bound as both the past input and the present output; the graph writes each new key and
/// value at its row's length and copies nothing else. Rows are right-padded: row b's tokens sit at positions
/// 0 .. <see cref="GetRowLength"/>(b) − 1 of each head, and each row has its own length.</item>
/// </list>
/// Capacity is what the request can reach (prompt plus new tokens, capped by the context length), not the whole
/// context; <see cref="EnsureCapacity"/> grows it, keeping the contents. Not thread-safe: one per generator.
/// </summary>
public sealed unsafe class KvCache : IDisposable
{
    private readonly Pair[] _tensors;
    private readonly int[] _rowLengths;
    private readonly int _elementBytes;
    private int _current;
    private bool _disposed;

    internal KvCache(ModelSignature signature, GptConfig config, int batchSize, int capacity, bool inPlace = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        if (inPlace && signature.CacheTensors.Any(t => t.Stacked))
        {
            throw new ArgumentException("an in-place cache needs separate key and value tensors (the Optimum convention).", nameof(inPlace));
        }

        BatchSize = batchSize;
        IsInPlace = inPlace;
        ElementType = signature.CacheElementType;
        _elementBytes = ElementType == TensorElementType.Float16 ? 2 : sizeof(float);
        _rowLengths = new int[batchSize];
        Layers = signature.Layers;
        Heads = config.KvHeads;
        HeadSize = config.HeadSize;
        _tensors = new Pair[signature.CacheTensors.Count];
        try
        {
            for (int i = 0; i < _tensors.Length; i++)
            {
                var t = signature.CacheTensors[i];
                long[] prefix = t.Stacked ? [2, batchSize, Heads] : [batchSize, Heads];
                _tensors[i] = new Pair(new NativeName(t.Past), new NativeName(t.Present), prefix);
            }

            Allocate(capacity, keep: 0);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Rows in the batch.</summary>
    public int BatchSize { get; }

    /// <summary>The element type of the cached keys and values: float32, or float16 for a float16 export.</summary>
    public TensorElementType ElementType { get; }

    /// <summary>Transformer layers (one key and one value tensor each).</summary>
    public int Layers { get; }

    /// <summary>Key/value heads (fewer than the attention heads with grouped-query attention).</summary>
    public int Heads { get; }

    /// <summary>Width of one head.</summary>
    public int HeadSize { get; }

    /// <summary>
    /// One buffer per tensor, (B, H, <see cref="Capacity"/>, D), written in place by the graph, each row with its own
    /// length (see <see cref="GetRowLength"/>); false: two buffers per tensor used in turn (ping-pong).
    /// </summary>
    public bool IsInPlace { get; }

    /// <summary>Tokens each buffer can hold (per row).</summary>
    public int Capacity { get; private set; }

    /// <summary>Tokens cached now (P); in place, the longest row's length.</summary>
    public int Length { get; private set; }

    /// <summary>Changes whenever the buffers are replaced (growth), so a binding over them must be redone.</summary>
    internal int Version { get; private set; }

    /// <summary>Tokens cached for <paramref name="row"/>: <see cref="Length"/> for a ping-pong cache, the row's own length in place.</summary>
    public int GetRowLength(int row)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, BatchSize);
        return IsInPlace ? _rowLengths[row] : Length;
    }

    /// <summary>
    /// Bytes of native memory the cache holds (every buffer of every tensor: two each for ping-pong, one in place; on
    /// Linux an in-place buffer of 1 MiB or more is rounded up to whole 2 MiB huge pages).
    /// </summary>
    public long AllocatedBytes
    {
        get
        {
            long total = 0;
            foreach (var t in _tensors)
            {
                total += (t.Buffers[0]?.Bytes ?? 0) + (t.Buffers[1]?.Bytes ?? 0);
            }

            return total;
        }
    }

    /// <summary>
    /// The cached values of one tensor (Optimum: <c>2·layer</c> is a key, <c>2·layer + 1</c> its value; ORT GPT-2:
    /// the stacked tensor of layer <c>i</c>), laid out as the past input: (B, H, P, D) or (2, B, H, P, D). In place,
    /// the whole buffer (B, H, <see cref="Capacity"/>, D), of which each row's first <see cref="GetRowLength"/> positions hold values.
    /// </summary>
    public ReadOnlySpan<float> GetTensor(int index) => Tensor<float>(index, TensorElementType.Float);

    /// <summary>As <see cref="GetTensor"/>, for a cache of float16 values (<see cref="ElementType"/>).</summary>
    public ReadOnlySpan<Half> GetHalfTensor(int index) => Tensor<Half>(index, TensorElementType.Float16);

    private ReadOnlySpan<T> Tensor<T>(int index, TensorElementType type) where T : unmanaged
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, _tensors.Length);
        if (type != ElementType)
        {
            throw new InvalidOperationException($"the cache holds {ElementType} values, not {type}.");
        }

        var t = _tensors[index];
        long count = t.Blocks * (IsInPlace ? Capacity : Length) * HeadSize;
        var buffer = t.Buffers[_current]!;
        _ = buffer.AsSpan(count * _elementBytes);   // checks the range
        return new ReadOnlySpan<T>(buffer.Pointer, checked((int)count));
    }

    /// <summary>Number of cache tensors (see <see cref="GetTensor"/>).</summary>
    public int TensorCount => _tensors.Length;

    /// <summary>Grows every buffer to hold at least <paramref name="capacity"/> tokens, keeping what is cached.</summary>
    internal void EnsureCapacity(int capacity)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (capacity > Capacity)
        {
            Allocate(capacity, keep: Length);
        }
    }

    /// <summary>
    /// Binds the first <paramref name="pastLength"/> cached tokens as the past inputs and the other buffer of each
    /// pair as the present outputs of <paramref name="totalLength"/> tokens. <paramref name="pastLength"/> may be
    /// less than <see cref="Length"/> (0 recomputes everything).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void Bind(IntPtr binding, IntPtr memoryInfo, int pastLength, int totalLength)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (IsInPlace)
        {
            throw new InvalidOperationException("an in-place cache is bound with BindInPlace.");
        }

        // The past is everything cached, or nothing (a full recompute); a shorter past needs Truncate first.
        if ((pastLength != Length && pastLength != 0) || totalLength > Capacity || totalLength < pastLength)
        {
            throw new InvalidOperationException(
                $"cache of {Length} tokens (capacity {Capacity}) cannot bind past {pastLength} and present {totalLength}.");
        }

        Span<long> shape = stackalloc long[5];
        foreach (var t in _tensors)
        {
            int rank = t.Prefix.Length + 2;
            t.Prefix.CopyTo(shape);
            shape[rank - 1] = HeadSize;

            shape[rank - 2] = pastLength;
            var past = t.Buffers[_current]!;
            OrtNative.Bind(binding, output: false, t.PastName, memoryInfo, past.Pointer,
                t.Blocks * pastLength * HeadSize * _elementBytes, shape[..rank], ElementType);

            shape[rank - 2] = totalLength;
            var present = t.Buffers[1 - _current]!;
            OrtNative.Bind(binding, output: true, t.PresentName, memoryInfo, present.Pointer,
                t.Blocks * totalLength * HeadSize * _elementBytes, shape[..rank], ElementType);
        }
    }

    /// <summary>
    /// In place: binds each tensor's one buffer as both its past input and its present output, over the whole batch
    /// (B, H, Cap, D) when <paramref name="row"/> is −1, else over that row's part (1, H, Cap, D), which is
    /// contiguous. The binding stays valid until the buffers are replaced (<see cref="Version"/> changes).
    /// </summary>
    internal void BindInPlace(IntPtr binding, IntPtr memoryInfo, int row)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!IsInPlace || row < -1 || row >= BatchSize)
        {
            throw new InvalidOperationException($"cannot bind row {row} of a {(IsInPlace ? "" : "ping-pong ")}cache of {BatchSize} rows in place.");
        }

        Span<long> shape = [row < 0 ? BatchSize : 1, Heads, Capacity, HeadSize];
        long rowFloats = (long)Heads * Capacity * HeadSize;
        long bytes = shape[0] * rowFloats * _elementBytes;
        foreach (var t in _tensors)
        {
            byte* data = t.Buffers[0]!.Pointer + (row < 0 ? 0 : row * rowFloats * _elementBytes);
            OrtNative.Bind(binding, output: false, t.PastName, memoryInfo, data, bytes, shape, ElementType);
            OrtNative.Bind(binding, output: true, t.PresentName, memoryInfo, data, bytes, shape, ElementType);
        }
    }

    /// <summary>In place, after a run: <paramref name="row"/> now holds <paramref name="length"/> tokens.</summary>
    internal void SetRowLength(int row, int length)
    {
        if (!IsInPlace || (uint)length > (uint)Capacity)
        {
            throw new InvalidOperationException($"row {row} cannot hold {length} tokens in a cache of capacity {Capacity}.");
        }

        _rowLengths[row] = length;
        int longest = 0;
        foreach (var l in _rowLengths)
        {
            longest = Math.Max(longest, l);
        }

        Length = longest;
    }

    /// <summary>After a run bound by <see cref="Bind"/>: the present buffers now hold the cache of <paramref name="totalLength"/> tokens.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void Commit(int totalLength)
    {
        _current = 1 - _current;
        Length = totalLength;
    }

    /// <summary>
    /// Keeps the first <paramref name="length"/> tokens, re-laying each tensor out for the shorter length in place;
    /// an in-place cache just cuts every row's length to at most <paramref name="length"/>.
    /// </summary>
    internal void Truncate(int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Length);
        if (IsInPlace)
        {
            // Nothing moves: a row's length is all that says which positions hold values.
            for (int b = 0; b < BatchSize; b++)
            {
                _rowLengths[b] = Math.Min(_rowLengths[b], length);
            }

            Length = Math.Min(Length, length);
            return;
        }

        if (length == Length)
        {
            return;
        }

        int d = HeadSize;
        foreach (var t in _tensors)
        {
            byte* data = t.Buffers[_current]!.Pointer;
            int e = _elementBytes;
            // Block j moves from j·Length·D to j·length·D: never forward, so going up in j never overwrites a
            // block not yet moved; Span.CopyTo handles the overlap within a block.
            for (long j = 1; j < t.Blocks; j++)
            {
                new Span<byte>(data + j * Length * d * e, length * d * e).CopyTo(new Span<byte>(data + j * length * d * e, length * d * e));
            }
        }

        Length = length;
    }

    private void Allocate(int capacity, int keep)
    {
        foreach (var t in _tensors)
        {
            long count = checked(t.Blocks * capacity * HeadSize);
            // The in-place cache is read whole by every decoding step: on huge pages where it is large enough.
            var fresh = new NativeBuffer<byte>(count * _elementBytes, hugePages: IsInPlace);
            var old = t.Buffers[_current];
            if (old is not null && keep > 0)
            {
                if (IsInPlace)
                {
                    // Each (row, head) block keeps its first `keep` positions at the new stride.
                    long oldStride = (long)Capacity * HeadSize, newStride = (long)capacity * HeadSize, used = (long)keep * HeadSize;
                    for (long j = 0; j < t.Blocks; j++)
                    {
                        Buffer.MemoryCopy(old.Pointer + j * oldStride * _elementBytes, fresh.Pointer + j * newStride * _elementBytes, newStride * _elementBytes, used * _elementBytes);
                    }
                }
                else
                {
                    long used = t.Blocks * keep * HeadSize;
                    Buffer.MemoryCopy(old.Pointer, fresh.Pointer, count * _elementBytes, used * _elementBytes);
                }
            }

            t.Buffers[0]?.Dispose();
            t.Buffers[1]?.Dispose();
            t.Buffers[0] = fresh;
            t.Buffers[1] = null;
            if (!IsInPlace)
            {
                t.Buffers[1] = new NativeBuffer<byte>(count * _elementBytes);
            }
        }

        _current = 0;
        Capacity = capacity;
        Version++;
    }

    /// <summary>Releases the native buffers.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var t in _tensors)
        {
            if (t is null)
            {
                continue;
            }

            t.Buffers[0]?.Dispose();
            t.Buffers[1]?.Dispose();
            t.PastName.Dispose();
            t.PresentName.Dispose();
        }
    }

    /// <summary>One past/present pair: its names, the dimensions before the token axis, and its two buffers.</summary>
    private sealed class Pair(NativeName pastName, NativeName presentName, long[] prefix)
    {
        public NativeName PastName { get; } = pastName;

        public NativeName PresentName { get; } = presentName;

        /// <summary>(B, H) or (2, B, H).</summary>
        public long[] Prefix { get; } = prefix;

        /// <summary>Product of <see cref="Prefix"/>: the number of (P, D) blocks.</summary>
        public long Blocks { get; } = Product(prefix);

        public NativeBuffer<byte>?[] Buffers { get; } = new NativeBuffer<byte>?[2];

        private static long Product(long[] dims)
        {
            long p = 1;
            foreach (var d in dims)
            {
                p *= d;
            }

            return p;
        }
    }
}

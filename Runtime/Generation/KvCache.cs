using System.Runtime.CompilerServices;
using Microsoft.ML.OnnxRuntime.Tensors;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Native;

namespace OnnxGpt.Runtime.Generation;

// Shapes: B rows, Hkv key/value heads, P cached (past) tokens, S = P + T tokens after a step, D head size, Cap capacity.

/// <summary>
/// The keys and values of every layer, in buffers from the session's allocator for the model's
/// <see cref="GptModel.CacheDevice"/>, laid out as the graph's past inputs want them. It alone knows the buffer
/// layout and the layer-indexed names; the decoder step that owns it decides what goes where. Two layouts:
/// <list type="bullet">
/// <item><b>Concatenating</b> (portable graphs, present = past ⊕ new): each cache tensor (Optimum: a layer's key and
/// its value, each (B, Hkv, P, D); ORT GPT-2: a layer's stacked (2, B, Hkv, P, D)) has two buffers of Cap tokens. A
/// step feeds the past as a tensor over the first <c>B·Hkv·P·D</c> values of one buffer and binds the present output
/// (P + T tokens, also contiguous) to the other, so ONNX Runtime writes it straight into our memory; then the two
/// swap. Rows share one length (<see cref="Length"/>): padding is masked.</item>
/// <item><b>In place</b> (<see cref="IsInPlace"/>, the fused graph's GroupQueryAttention): one buffer per tensor of
/// shape (B, Hkv, Cap, D), bound as both the past input and the present output; the graph writes each new key and
/// value at its row's length and copies nothing else. Row b's tokens sit at positions 0 .. <see cref="GetRowLength"/>(b) − 1
/// of each head; the lengths are the sequences' own (the cache only reports them).</item>
/// </list>
/// The head count and head size come from the graph's declared past shapes, so a model with fewer key/value heads
/// than query heads (grouped-query attention) gets a cache of its key/value heads. In host memory the capacity is
/// what the request can reach and <see cref="EnsureCapacity"/> grows it, keeping the contents; in device memory,
/// which C# cannot copy, it is the context length from the start. Not thread-safe: one per decoder step.
/// </summary>
public sealed unsafe class KvCache : IDisposable
{
    private readonly GptModel _model;
    private readonly Pair[] _tensors;
    private readonly int _elementBytes;
    private int _current;
    private bool _disposed;

    internal KvCache(GptModel model, int rows, int capacity, bool inPlace)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        var signature = model.Signature;
        if (inPlace && signature.CacheTensors.Any(t => t.Stacked))
        {
            throw new ArgumentException("an in-place cache needs separate key and value tensors (the Optimum convention).", nameof(inPlace));
        }

        _model = model;
        BatchSize = rows;
        IsInPlace = inPlace;
        Device = model.CacheDevice;
        ElementType = signature.CacheElementType;
        _elementBytes = ElementType == TensorElementType.Float16 ? 2 : sizeof(float);
        Layers = signature.Layers;
        // The graph's declared past shape (B, Hkv, P, D) is the truth; the config only fills a dimension the graph
        // leaves symbolic. A grouped-query model has fewer key/value heads than query heads.
        Heads = signature.Heads ?? model.Config.KvHeads;
        HeadSize = signature.HeadSize ?? model.Config.HeadSize;
        _tensors = new Pair[signature.CacheTensors.Count];
        try
        {
            for (int i = 0; i < _tensors.Length; i++)
            {
                var t = signature.CacheTensors[i];
                long[] prefix = t.Stacked ? [2, rows, Heads] : [rows, Heads];
                _tensors[i] = new Pair(new NativeName(t.Past), new NativeName(t.Present), prefix);
            }

            // Device memory cannot be copied from C#: take the whole context at once, so it never has to grow.
            Allocate(Device == "cpu" ? capacity : Math.Max(capacity, model.Config.ContextLength), keep: 0);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Rows in the batch (sequence slots).</summary>
    public int BatchSize { get; }

    /// <summary>The element type of the cached keys and values: float32, or float16 for a float16 export.</summary>
    public TensorElementType ElementType { get; }

    /// <summary>Where the buffers live: <c>cpu</c> or <c>cuda:N</c> (see <see cref="GptModel.CacheDevice"/>).</summary>
    public string Device { get; }

    /// <summary>Transformer layers (one key and one value tensor each).</summary>
    public int Layers { get; }

    /// <summary>Key/value heads, as the graph's past inputs declare them (fewer than the query heads under grouped-query attention).</summary>
    public int Heads { get; }

    /// <summary>Width of one head.</summary>
    public int HeadSize { get; }

    /// <summary>
    /// One buffer per tensor, (B, Hkv, <see cref="Capacity"/>, D), written in place by the graph, each row with its
    /// own length (see <see cref="GetRowLength"/>); false: two buffers per tensor used in turn (concatenating).
    /// </summary>
    public bool IsInPlace { get; }

    /// <summary>Tokens each buffer can hold (per row).</summary>
    public int Capacity { get; private set; }

    /// <summary>Tokens cached now (P); in place, the longest row's length.</summary>
    public int Length
    {
        get
        {
            if (!IsInPlace)
            {
                return _length;
            }

            int longest = 0;
            for (int b = 0; b < BatchSize; b++)
            {
                longest = Math.Max(longest, GetRowLength(b));
            }

            return longest;
        }
    }

    private int _length;

    /// <summary>Changes whenever the buffers are replaced (growth), so a binding over them must be redone.</summary>
    internal int Version { get; private set; }

    /// <summary>In place: where the rows' lengths are read (the sequences hold them); set by the step that owns the cache.</summary>
    internal Func<int, int>? RowLengths { get; set; }

    /// <summary>Whether C# can read and move the contents (host memory).</summary>
    internal bool IsHostAccessible => Device == "cpu";

    /// <summary>Tokens cached for <paramref name="row"/>: <see cref="Length"/> for a concatenating cache, the row's own length in place.</summary>
    public int GetRowLength(int row)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, BatchSize);
        return IsInPlace ? RowLengths?.Invoke(row) ?? 0 : _length;
    }

    /// <summary>Bytes of memory the cache holds (every buffer of every tensor: two each when concatenating, one in place).</summary>
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
    /// the stacked tensor of layer <c>i</c>), laid out as the past input: (B, Hkv, P, D) or (2, B, Hkv, P, D). In place,
    /// the whole buffer (B, Hkv, <see cref="Capacity"/>, D), of which each row's first <see cref="GetRowLength"/> positions hold values.
    /// </summary>
    /// <exception cref="InvalidOperationException">The cache lives in device memory, or holds float16 values.</exception>
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

        if (!IsHostAccessible)
        {
            throw new InvalidOperationException($"the cache lives in {Device} memory, which C# cannot read.");
        }

        var t = _tensors[index];
        long count = t.Blocks * (IsInPlace ? Capacity : _length) * HeadSize;
        return new ReadOnlySpan<T>(t.Buffers[_current]!.Pointer, checked((int)count));
    }

    /// <summary>Number of cache tensors (see <see cref="GetTensor"/>).</summary>
    public int TensorCount => _tensors.Length;

    /// <summary>Grows every buffer to hold at least <paramref name="capacity"/> tokens, keeping what is cached.</summary>
    internal void EnsureCapacity(int capacity)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (capacity > Capacity)
        {
            if (!IsHostAccessible)
            {
                throw new InvalidOperationException($"a cache in {Device} memory holds the whole context ({Capacity} tokens) and cannot grow to {capacity}.");
            }

            Allocate(capacity, keep: IsInPlace ? Capacity : _length);
        }
    }

    /// <summary>
    /// Concatenating: binds the first <paramref name="pastLength"/> cached tokens as the past inputs and the other
    /// buffer of each pair as the present outputs of <paramref name="totalLength"/> tokens. Without
    /// <paramref name="bindPast"/> (a first-step decoder, whose graph has no past inputs) only the present outputs are
    /// bound, and the cache must be empty.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void Bind(IntPtr binding, int pastLength, int totalLength, bool bindPast = true)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (IsInPlace || pastLength != _length || totalLength > Capacity || totalLength < pastLength || (!bindPast && pastLength != 0))
        {
            throw new InvalidOperationException(
                $"a {(IsInPlace ? "in-place" : "concatenating")} cache of {_length} tokens (capacity {Capacity}) cannot bind past {pastLength} and present {totalLength}.");
        }

        Span<long> shape = stackalloc long[5];
        foreach (var t in _tensors)
        {
            int rank = t.Prefix.Length + 2;
            t.Prefix.CopyTo(shape);
            shape[rank - 1] = HeadSize;

            shape[rank - 2] = pastLength;
            var past = t.Buffers[_current]!;
            if (bindPast)
            {
                OrtNative.Bind(binding, output: false, t.PastName, past.MemoryInfo, past.Pointer,
                    t.Blocks * pastLength * HeadSize * _elementBytes, shape[..rank], ElementType);
            }

            shape[rank - 2] = totalLength;
            var present = t.Buffers[1 - _current]!;
            OrtNative.Bind(binding, output: true, t.PresentName, present.MemoryInfo, present.Pointer,
                t.Blocks * totalLength * HeadSize * _elementBytes, shape[..rank], ElementType);
        }
    }

    /// <summary>Concatenating, after a run bound by <see cref="Bind"/>: the present buffers now hold the cache of <paramref name="totalLength"/> tokens.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void Commit(int totalLength)
    {
        _current = 1 - _current;
        _length = totalLength;
    }

    /// <summary>
    /// Concatenating: keeps the first <paramref name="length"/> tokens, re-laying each tensor out for the shorter
    /// length in place (host memory only; a device cache can only drop everything).
    /// </summary>
    internal void Truncate(int length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, _length);
        if (IsInPlace)
        {
            throw new InvalidOperationException("an in-place cache is rewound through its rows' lengths, not truncated.");
        }

        if (length == _length || length == 0)
        {
            _length = length;
            return;
        }

        if (!IsHostAccessible)
        {
            throw new InvalidOperationException($"a concatenating cache in {Device} memory cannot be re-laid out from C#; rewind it to 0.");
        }

        int d = HeadSize, e = _elementBytes;
        foreach (var t in _tensors)
        {
            byte* data = t.Buffers[_current]!.Pointer;
            // Block j moves from j·Length·D to j·length·D: never forward, so going up in j never overwrites a
            // block not yet moved; Span.CopyTo handles the overlap within a block.
            for (long j = 1; j < t.Blocks; j++)
            {
                new Span<byte>(data + j * _length * d * e, length * d * e).CopyTo(new Span<byte>(data + j * length * d * e, length * d * e));
            }
        }

        _length = length;
    }

    /// <summary>
    /// In place: binds each tensor's one buffer as both its past input and its present output, over rows
    /// [<paramref name="firstRow"/>, <paramref name="firstRow"/> + <paramref name="rows"/>): a (rows, Hkv, Cap, D)
    /// part, contiguous. The binding stays valid until the buffers are replaced (<see cref="Version"/> changes).
    /// </summary>
    internal void BindInPlace(IntPtr binding, int firstRow, int rows)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!IsInPlace || firstRow < 0 || rows <= 0 || firstRow + rows > BatchSize)
        {
            throw new InvalidOperationException($"cannot bind rows [{firstRow}, {firstRow + rows}) of a {(IsInPlace ? "" : "concatenating ")}cache of {BatchSize} rows in place.");
        }

        Span<long> shape = [rows, Heads, Capacity, HeadSize];
        long rowBytes = (long)Heads * Capacity * HeadSize * _elementBytes;
        foreach (var t in _tensors)
        {
            var buffer = t.Buffers[0]!;
            byte* data = buffer.Pointer + firstRow * rowBytes;
            OrtNative.Bind(binding, output: false, t.PastName, buffer.MemoryInfo, data, rows * rowBytes, shape, ElementType);
            OrtNative.Bind(binding, output: true, t.PresentName, buffer.MemoryInfo, data, rows * rowBytes, shape, ElementType);
        }
    }

    /// <summary>
    /// Copies positions [<paramref name="from"/>, <paramref name="to"/>) of every layer's keys and values from row
    /// <paramref name="source"/> to row <paramref name="destination"/> (in place: cache positions of the row; concatenating:
    /// slots of the shared length), leaving every other position and row as it was: one copy per (tensor, head) of
    /// (to − from) · D values. Host memory only.
    /// </summary>
    /// <exception cref="InvalidOperationException">The cache lives in device memory, which C# cannot copy.</exception>
    internal void CopyRow(int source, int destination, int from, int to)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(from);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(to, IsInPlace ? Capacity : _length);
        if ((uint)source >= (uint)BatchSize || (uint)destination >= (uint)BatchSize)
        {
            throw new ArgumentOutOfRangeException(nameof(source), $"rows {source} and {destination} must be below the batch size {BatchSize}.");
        }

        if (!IsHostAccessible)
        {
            throw new InvalidOperationException($"the KV cache lives in {Device} memory, which C# cannot copy from row to row.");
        }

        if (to <= from || source == destination)
        {
            return;
        }

        long stride = (long)(IsInPlace ? Capacity : _length) * HeadSize * _elementBytes;   // one (row, head) block
        long offset = (long)from * HeadSize * _elementBytes, bytes = (long)(to - from) * HeadSize * _elementBytes;
        foreach (var t in _tensors)
        {
            byte* data = t.Buffers[_current]!.Pointer;
            int stacks = t.Prefix.Length == 3 ? 2 : 1;   // (2, B, Hkv) for ORT GPT-2's stacked key and value
            for (int k = 0; k < stacks; k++)
            {
                for (int h = 0; h < Heads; h++)
                {
                    long src = ((long)(k * BatchSize + source) * Heads + h) * stride + offset;
                    long dst = ((long)(k * BatchSize + destination) * Heads + h) * stride + offset;
                    Buffer.MemoryCopy(data + src, data + dst, bytes, bytes);
                }
            }
        }
    }

    private void Allocate(int capacity, int keep)
    {
        foreach (var t in _tensors)
        {
            long count = checked(t.Blocks * capacity * HeadSize);
            // The in-place cache is read whole by every decoding step: on huge pages where it is large enough.
            var fresh = _model.AllocateCache(count * _elementBytes, hugePages: IsInPlace);
            var old = t.Buffers[_current];
            if (old is not null && keep > 0)
            {
                if (IsInPlace)
                {
                    // Each (row, head) block keeps its first `keep` positions at the new stride.
                    long oldStride = (long)Capacity * HeadSize * _elementBytes, newStride = (long)capacity * HeadSize * _elementBytes, used = (long)keep * HeadSize * _elementBytes;
                    for (long j = 0; j < t.Blocks; j++)
                    {
                        Buffer.MemoryCopy(old.Pointer + j * oldStride, fresh.Pointer + j * newStride, newStride, used);
                    }
                }
                else
                {
                    long used = t.Blocks * keep * HeadSize * _elementBytes;
                    Buffer.MemoryCopy(old.Pointer, fresh.Pointer, count * _elementBytes, used);
                }
            }

            t.Buffers[0]?.Dispose();
            t.Buffers[1]?.Dispose();
            t.Buffers[0] = fresh;
            t.Buffers[1] = null;
            if (!IsInPlace)
            {
                t.Buffers[1] = _model.AllocateCache(count * _elementBytes);
            }
        }

        _current = 0;
        Capacity = capacity;
        Version++;
    }

    /// <summary>Releases the buffers.</summary>
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

        /// <summary>(B, Hkv) or (2, B, Hkv).</summary>
        public long[] Prefix { get; } = prefix;

        /// <summary>Product of <see cref="Prefix"/>: the number of (P, D) blocks.</summary>
        public long Blocks { get; } = Product(prefix);

        public DeviceBuffer?[] Buffers { get; } = new DeviceBuffer?[2];

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

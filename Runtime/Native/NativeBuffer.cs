using System.Runtime.InteropServices;

namespace OnnxGpt.Runtime.Native;

/// <summary>
/// A block of native memory of elements of <typeparamref name="T"/> that we own: ONNX Runtime reads inputs from it
/// and writes outputs into it without a copy. Aligned to 64 bytes; zeroed when allocated; freed on dispose.
/// </summary>
internal sealed unsafe class NativeBuffer<T> : IDisposable where T : unmanaged
{
    private const int Alignment = 64;
    private T* _data;

    public NativeBuffer(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        long bytes = checked(Math.Max(length, 1) * sizeof(T));
        _data = (T*)NativeMemory.AlignedAlloc((nuint)bytes, Alignment);
        NativeMemory.Clear(_data, (nuint)bytes);
    }

    /// <summary>Capacity in elements.</summary>
    public long Length { get; }

    public long Bytes => Length * sizeof(T);

    public T* Pointer => _data != null ? _data : throw new ObjectDisposedException(nameof(NativeBuffer<T>));

    /// <summary>The first <paramref name="count"/> elements (a span covers at most int.MaxValue elements).</summary>
    public Span<T> AsSpan(long count)
    {
        if ((ulong)count > (ulong)Length || count > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, $"the buffer holds {Length} elements.");
        }

        return new Span<T>(Pointer, (int)count);
    }

    /// <summary>Elements [<paramref name="start"/>, <paramref name="start"/> + <paramref name="count"/>).</summary>
    public Span<T> Slice(long start, int count)
    {
        if (start < 0 || count < 0 || start + count > Length)
        {
            throw new ArgumentOutOfRangeException(nameof(start), start, $"[{start}, {start + count}) is outside the buffer of {Length} elements.");
        }

        return new Span<T>(Pointer + start, count);
    }

    public void Dispose()
    {
        if (_data != null)
        {
            NativeMemory.AlignedFree(_data);
            _data = null;
        }
    }
}

using System.Runtime.InteropServices;

namespace OnnxGpt.Runtime.Native;

/// <summary>
/// A block of native memory of elements of <typeparamref name="T"/> that we own: ONNX Runtime reads inputs from it
/// and writes outputs into it without a copy. Aligned to 64 bytes; zeroed when allocated; freed on dispose.
/// </summary>
internal sealed unsafe class NativeBuffer<T> : IDisposable where T : unmanaged
{
    private const int Alignment = 64;

    /// <summary>The size of a transparent huge page on x86-64 and most arm64 Linux kernels.</summary>
    internal const long HugePageBytes = 2L << 20;

    /// <summary>The smallest buffer that asks for huge pages: smaller ones would waste most of their page.</summary>
    internal const long HugePageThreshold = 1L << 20;

    private T* _data;

    /// <summary>
    /// Allocates <paramref name="length"/> zeroed elements. With <paramref name="hugePages"/>, a buffer of at least
    /// <see cref="HugePageThreshold"/> bytes on Linux is rounded up to whole 2 MiB pages, aligned to one, and offered
    /// to the kernel's transparent huge pages (<c>madvise(MADV_HUGEPAGE)</c>; where the kernel declines, it stays on
    /// 4 KiB pages): a buffer that each step reads end to end, as a decoding step reads the KV cache, then costs
    /// one TLB entry per 2 MiB instead of one per 4 KiB (measured: the attention kernels 5–9 % faster at 512–880
    /// tokens of context, see docs/performance.md).
    /// </summary>
    public NativeBuffer(long length, bool hugePages = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        long bytes = checked(Math.Max(length, 1) * sizeof(T));
        nuint alignment = Alignment;
        bool huge = hugePages && OperatingSystem.IsLinux() && bytes >= HugePageThreshold;
        if (huge)
        {
            bytes = checked((bytes + HugePageBytes - 1) / HugePageBytes * HugePageBytes);
            alignment = (nuint)HugePageBytes;
        }

        _data = (T*)NativeMemory.AlignedAlloc((nuint)bytes, alignment);
        Bytes = bytes;
        if (huge)
        {
            _ = LinuxMemory.AdviseHugePages(_data, (nuint)bytes);   // advice only: a refusal leaves 4 KiB pages
        }

        NativeMemory.Clear(_data, (nuint)bytes);   // touches every page, so the kernel backs it now, not mid-step
    }

    /// <summary>Capacity in elements.</summary>
    public long Length { get; }

    /// <summary>Bytes held: <see cref="Length"/> elements, rounded up to whole huge pages where they were asked for.</summary>
    public long Bytes { get; }

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

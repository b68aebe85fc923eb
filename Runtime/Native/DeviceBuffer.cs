using Microsoft.ML.OnnxRuntime;

namespace OnnxGpt.Runtime.Native;

/// <summary>
/// A block of memory from the session's allocator for the device that keeps the KV cache (see
/// <see cref="Model.GptModel"/>): host memory on the CPU, device memory on CUDA. ONNX Runtime reads and writes it
/// in place through the binding; only host memory can be read from C# (<see cref="IsHostAccessible"/>). Freed
/// through the model, which keeps its session and allocator alive until the last buffer is freed.
/// </summary>
internal sealed unsafe class DeviceBuffer : IDisposable
{
    private readonly Action<DeviceBuffer> _free;
    private OrtMemoryAllocation? _allocation;

    public DeviceBuffer(OrtMemoryAllocation allocation, long bytes, bool hostAccessible, IntPtr memoryInfo, Action<DeviceBuffer> free, bool hugePages = false)
    {
        _allocation = allocation;
        _free = free;
        Bytes = bytes;
        IsHostAccessible = hostAccessible;
        MemoryInfo = memoryInfo;
        Pointer = (byte*)allocation.DangerousGetHandle();
        if (hostAccessible)
        {
            if (hugePages && OperatingSystem.IsLinux() && bytes >= NativeBuffer<byte>.HugePageThreshold)
            {
                // The allocator's block need not start on a page: advise the whole 4 KiB pages inside it (the kernel
                // backs its 2 MiB-aligned stretches with huge pages). Advice only: a refusal leaves 4 KiB pages.
                const long Page = 4096;
                long start = ((long)Pointer + Page - 1) & ~(Page - 1), end = ((long)Pointer + bytes) & ~(Page - 1);
                if (end > start)
                {
                    _ = LinuxMemory.AdviseHugePages((void*)start, (nuint)(end - start));
                }
            }

            // Touches every page, so the kernel backs it now, not mid-step.
            System.Runtime.InteropServices.NativeMemory.Clear(Pointer, (nuint)bytes);
        }
    }

    /// <summary>The first byte (a device address for device memory).</summary>
    public byte* Pointer { get; }

    /// <summary>Size in bytes.</summary>
    public long Bytes { get; }

    /// <summary>Whether C# may read and write it (host memory).</summary>
    public bool IsHostAccessible { get; }

    /// <summary>The native <c>OrtMemoryInfo*</c> to bind it with.</summary>
    public IntPtr MemoryInfo { get; }

    /// <summary>The allocation, for the model to release.</summary>
    internal OrtMemoryAllocation? Allocation => _allocation;

    public void Dispose()
    {
        if (_allocation is not null)
        {
            _free(this);
            _allocation = null;
        }
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using OnnxGpt.Runtime.Native;

namespace OnnxGpt.Tests.Runtime.Native;

[TestClass]
public sealed class NativeBufferTests
{
    [TestMethod]
    public void PlainBufferHoldsExactlyWhatWasAskedForZeroed()
    {
        using var buffer = new NativeBuffer<float>(3 << 18);   // 3 MiB of floats, no huge pages asked for
        Assert.AreEqual(3L << 20, buffer.Bytes);
        Assert.AreEqual(0, Address(buffer) % 64, "64-byte aligned");
        Assert.IsLessThan(0, buffer.AsSpan(buffer.Length).IndexOfAnyExcept(0f), "zeroed");
    }

    [TestMethod]
    public void LargeHugePageBufferIsWholeAlignedHugePagesOnLinux()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Inconclusive("Transparent huge pages are a Linux feature; elsewhere the buffer is a plain one.");
        }

        long length = (3L << 20) / 2 / sizeof(float);   // 1.5 MiB: at least the threshold, less than a huge page
        using var buffer = new NativeBuffer<float>(length, hugePages: true);
        Assert.AreEqual(length, buffer.Length);
        Assert.AreEqual(NativeBuffer<float>.HugePageBytes, buffer.Bytes, "rounded up to one whole huge page");
        Assert.AreEqual(0, Address(buffer) % NativeBuffer<float>.HugePageBytes, "aligned to a huge page");
        var all = buffer.AsSpan(length);
        Assert.IsLessThan(0, all.IndexOfAnyExcept(0f), "zeroed");
        all[^1] = 1;
        Assert.AreEqual(1f, buffer.AsSpan(length)[^1]);
    }

    [TestMethod]
    public void SmallBufferAsksForNoHugePages()
    {
        long length = NativeBuffer<byte>.HugePageThreshold - 1;
        using var buffer = new NativeBuffer<byte>(length, hugePages: true);
        Assert.AreEqual(length, buffer.Bytes, "under the threshold nothing is rounded up");
    }

    private static long Address<T>(NativeBuffer<T> buffer) where T : unmanaged =>
        Unsafe.ByteOffset(ref Unsafe.NullRef<T>(), ref MemoryMarshal.GetReference(buffer.AsSpan(1)));
}

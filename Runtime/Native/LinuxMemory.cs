using System.Runtime.InteropServices;

namespace OnnxGpt.Runtime.Native;

/// <summary>The Linux memory call the runtime makes itself: advice on how a range of its own memory is used.</summary>
internal static unsafe partial class LinuxMemory
{
    /// <summary><c>MADV_HUGEPAGE</c> from the Linux headers: back the range with transparent huge pages where possible.</summary>
    private const int MadviseHugePage = 14;

    /// <summary>Asks the kernel to back [<paramref name="start"/>, + <paramref name="length"/>) with huge pages; false where it refused.</summary>
    public static bool AdviseHugePages(void* start, nuint length) =>
        OperatingSystem.IsLinux() && Madvise(start, length, MadviseHugePage) == 0;

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(void* start, nuint length, int advice);
}

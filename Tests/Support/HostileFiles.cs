using System.Diagnostics;
using System.Runtime.InteropServices;

namespace OnnxGpt.Tests.Support;

/// <summary>What the hardening tests need: FIFOs and symbolic links in place of files, and a time limit on a call.</summary>
internal static class HostileFiles
{
    /// <summary>Whether FIFOs can be made here (Unix).</summary>
    public static bool CanMakeFifo => !OperatingSystem.IsWindows();

    /// <summary>Makes a FIFO at <paramref name="path"/>; a test on Windows ends Inconclusive.</summary>
    public static void MakeFifo(string path)
    {
        if (!CanMakeFifo)
        {
            Assert.Inconclusive("FIFOs exist on Unix only.");
        }

        if (File.Exists(path))
        {
            File.Delete(path);
        }

        Assert.AreEqual(0, mkfifo(path, Convert.ToUInt32("644", 8)), $"mkfifo {path} failed (errno {Marshal.GetLastPInvokeError()}).");
    }

    /// <summary>Makes a symbolic link, or ends the test Inconclusive where the system refuses (Windows without the privilege).</summary>
    public static void Symlink(string link, string target)
    {
        try
        {
            File.CreateSymbolicLink(link, target);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Assert.Inconclusive($"cannot make a symbolic link here: {e.Message}");
        }
    }

    /// <summary>Runs <paramref name="action"/> on another thread and fails the test if it takes longer than the limit (a hang).</summary>
    public static T Within<T>(TimeSpan limit, Func<T> action, string what)
    {
        var clock = Stopwatch.StartNew();
        var task = Task.Factory.StartNew(action, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        if (!task.Wait(limit))
        {
            Assert.Fail($"{what} did not finish within {limit.TotalSeconds} s: it hangs.");
        }

        Assert.IsTrue(clock.Elapsed <= limit, $"{what} took {clock.Elapsed.TotalSeconds:F1} s.");
        return task.GetAwaiter().GetResult();
    }

    /// <summary>Runs <paramref name="action"/> within the limit and returns the <see cref="OnnxGptException"/> it must throw.</summary>
    public static OnnxGptException FailsWithin(TimeSpan limit, Action action, string what) =>
        Within(limit, () =>
        {
            try
            {
                action();
            }
            catch (OnnxGptException e)
            {
                return e;
            }

            Assert.Fail($"{what} did not throw an OnnxGptException.");
            return null!;
        }, what);

    [DllImport("libc", SetLastError = true)]
    private static extern int mkfifo([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint mode);
}

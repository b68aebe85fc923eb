using System.Diagnostics;
using System.Numerics;
using System.Runtime.InteropServices;

namespace OnnxGpt.Cli.Benchmarking;

/// <summary>DRAM read bandwidth: the best of five passes summing a 1 GiB float array with the given threads.</summary>
internal static class Bandwidth
{
    public static double MeasureGBps(int threads, long bytes = 1L << 30)
    {
        long count = bytes / sizeof(float);
        var data = GC.AllocateUninitializedArray<float>((int)count, pinned: true);
        for (long i = 0; i < count; i++)
        {
            data[i] = 1;
        }

        double best = 0;
        float sink = 0;
        for (int pass = 0; pass < 5; pass++)
        {
            var partial = new float[threads];
            var clock = Stopwatch.StartNew();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
            {
                long chunk = count / threads, start = t * chunk, end = t == threads - 1 ? count : start + chunk;
                var span = MemoryMarshal.Cast<float, Vector<float>>(data.AsSpan((int)start, (int)(end - start)));
                Vector<float> a = default, b = default, c = default, d = default;
                int i = 0;
                for (; i + 4 <= span.Length; i += 4)
                {
                    a += span[i];
                    b += span[i + 1];
                    c += span[i + 2];
                    d += span[i + 3];
                }

                partial[t] = Vector.Sum(a + b + c + d);
            });
            double seconds = clock.Elapsed.TotalSeconds;
            sink += partial.Sum();
            best = Math.Max(best, bytes / seconds / 1e9);
        }

        GC.KeepAlive(sink);
        return best;
    }
}

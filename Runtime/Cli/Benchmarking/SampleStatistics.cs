using System.Net;
using System.Net.Sockets;

namespace OnnxGpt.Cli.Benchmarking;

/// <summary>What the benchmarks share: the median of their repetitions, and free loopback ports for the servers they start.</summary>
internal static class SampleStatistics
{
    /// <summary>The middle value, or the mean of the two middle ones; NaN for no values.</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN
            : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>Ports no listener holds now on the loopback interface, <paramref name="count"/> distinct ones.</summary>
    public static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        listeners.ForEach(l => l.Start());
        int[] ports = [.. listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port)];
        listeners.ForEach(l => l.Stop());
        return ports;
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace OnnxGpt.Bench.Load;

/// <summary>`onnxgpt serve` in a child process on a free loopback port, stopped with SIGTERM so it reports its engine's counters.</summary>
public sealed class ServerProcess : IDisposable
{
    private readonly Process _process;
    private readonly List<string> _output = [];

    private ServerProcess(Process process, string url)
    {
        _process = process;
        Url = url;
    }

    public string Url { get; }

    /// <summary>What the server printed (its start lines, and its engine's counters once stopped).</summary>
    public IReadOnlyList<string> Output
    {
        get
        {
            lock (_output)
            {
                return [.. _output];
            }
        }
    }

    /// <summary>The server process's peak working set so far, in MiB.</summary>
    public double PeakWorkingSetMiB
    {
        get
        {
            _process.Refresh();
            return _process.PeakWorkingSet64 / 1048576.0;
        }
    }

    public static ServerProcess Start(LoadOptions o, string model, int slots)
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        string url = $"http://127.0.0.1:{port}";
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[]
        {
            o.Onnxgpt, "serve", "--model", model, "--urls", url, "--model-id", "bench", "--parallel", slots.ToString(CultureInfo.InvariantCulture),
            "--queue", "64", "--cache-conversations", "0", "--max-tokens-limit", "4096", "--threads", o.Threads.ToString(CultureInfo.InvariantCulture), "--quiet",
        })
        {
            start.ArgumentList.Add(a);
        }

        var process = Process.Start(start)!;
        var server = new ServerProcess(process, url);
        var ready = new TaskCompletionSource();
        void Read(string? line)
        {
            if (line is null)
            {
                ready.TrySetException(new InvalidOperationException($"onnxgpt serve exited before it listened: {string.Join('\n', server.Output)}"));
                return;
            }

            lock (server._output)
            {
                server._output.Add(line);
            }

            if (line.StartsWith("serving ", StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
        }

        process.OutputDataReceived += (_, e) => Read(e.Data);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (server._output)
                {
                    server._output.Add(e.Data);
                }
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!ready.Task.Wait(TimeSpan.FromMinutes(2)))
        {
            server.Dispose();
            throw new TimeoutException("onnxgpt serve did not listen within 2 minutes.");
        }

        return server;
    }

    /// <summary>Stops the server (SIGTERM: a graceful shutdown) and waits for it to exit.</summary>
    public void Stop()
    {
        if (_process.HasExited)
        {
            return;
        }

        if (OperatingSystem.IsWindows())
        {
            _process.Kill();
        }
        else
        {
            using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]);
            kill.WaitForExit();
        }

        if (!_process.WaitForExit(TimeSpan.FromSeconds(30)))
        {
            _process.Kill();
        }

        _process.WaitForExit();
    }

    public void Dispose()
    {
        Stop();
        _process.Dispose();
    }
}

using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace OnnxGpt.Tests.Runtime.Orleans;

/// <summary>One <c>onnxgpt serve</c> process (the tool built beside the tests), its output kept, killed on dispose.</summary>
internal sealed partial class ServeProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource<string> _url = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ServeProcess(string name, IEnumerable<string> arguments)
    {
        Name = name;
        string tool = Path.Combine(AppContext.BaseDirectory, "onnxgpt.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(tool);
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        _process = new Process { StartInfo = start, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) => Line(e.Data);
        _process.ErrorDataReceived += (_, e) => Line(e.Data);
        _process.Exited += (_, _) => _url.TrySetException(new AssertFailedException($"{Name} exited ({_process.ExitCode}) before it served:\n{Output}"));
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Name { get; }

    /// <summary>Everything the process wrote so far.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts <c>onnxgpt serve ARGS</c> and waits until it says where it listens.</summary>
    public static async Task<(ServeProcess Process, string Url)> StartAsync(string name, IEnumerable<string> arguments, TimeSpan timeout)
    {
        var process = new ServeProcess(name, arguments);
        try
        {
            string url = await process._url.Task.WaitAsync(timeout);
            return (process, url);
        }
        catch (TimeoutException)
        {
            process.Dispose();
            throw new AssertFailedException($"{name} did not serve within {timeout.TotalSeconds:F0} s:\n{process.Output}");
        }
    }

    /// <summary>Kills the process at once (a crash, not a shutdown) and waits for it to be gone.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    private void Line(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }

        if (ServingLine().Match(line) is { Success: true } m)
        {
            _url.TrySetResult(m.Groups[1].Value);
        }
    }

    [GeneratedRegex(@"^serving '.*' \(.*\) on (http://[^,;\s]+)")]
    private static partial Regex ServingLine();
}

using System.Diagnostics;
using OnnxGpt.Cli;
using OnnxGpt.Cli.Progress;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary>
/// Progress of long commands: a bar with count, rate and time left on a terminal (run here through a pseudo-terminal
/// with <c>script</c>), plain periodic lines when redirected, never a carriage return or an escape code in a log.
/// </summary>
[TestClass]
public sealed class ProgressTests
{
    [TestMethod]
    public void RedirectedProgressIsPlainPeriodicLines()
    {
        var log = new StringWriter();
        string Written()
        {
            lock (log)   // CliProgress writes its lines under the writer's lock, from its timer's thread
            {
                return log.ToString();
            }
        }

        using (var progress = CliProgress.Start(log, "eval", 1000, "tokens", TimeSpan.FromMilliseconds(40)))
        {
            // The periodic lines come from a timer, which a loaded machine may run late: wait for each count's line
            // (up to 30 s) rather than for a fixed time.
            for (int i = 1; i <= 3; i++)
            {
                progress.Report(i * 100);
                string count = $"eval: {i * 100:N0}/1,000 tokens";
                var waited = Stopwatch.StartNew();
                while (!Written().Contains(count, StringComparison.Ordinal) && waited.Elapsed < TimeSpan.FromSeconds(30))
                {
                    Thread.Sleep(10);
                }

                StringAssert.Contains(Written(), count, "a periodic line for each count reported");
            }

            progress.Report(1000);
        }

        var lines = log.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        Assert.IsGreaterThanOrEqualTo(4, lines.Length, log.ToString());
        Assert.IsTrue(lines.All(l => l.StartsWith("eval: ", StringComparison.Ordinal) && l.Contains(" tokens/s", StringComparison.Ordinal)), log.ToString());
        Assert.IsTrue(lines[..^1].Any(l => l.EndsWith(" left", StringComparison.Ordinal)), "lines before the last say the time left:\n" + log);
        StringAssert.StartsWith(lines[^1], "eval: 1,000/1,000 tokens (100%)");
        Assert.DoesNotContain("\r", log.ToString());
        Assert.DoesNotContain("\u001b", log.ToString());
    }

    [TestMethod]
    public void EvalShowsABarOnATerminalAndALineWhenRedirected()
    {
        if (OperatingSystem.IsWindows() || !File.Exists("/usr/bin/script"))
        {
            Assert.Inconclusive("needs util-linux 'script' for a pseudo-terminal");
            return;
        }

        var weights = TestWeights.Random(TestWeights.Small(), seed: 88);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.Export(weights, tmp);
        string ids = string.Join(",", Enumerable.Range(0, 400).Select(i => i * 7 % 53));
        string dll = typeof(Program).Assembly.Location;
        string command = $"dotnet '{dll}' eval --model '{folder}' --ids {ids} --stride 4 --threads 1";

        // A terminal: script runs the command on a pseudo-terminal and records what the terminal was sent.
        string typescript = tmp.Sub("typescript");
        var (code, _, err) = Run("/usr/bin/script", ["-qec", command, typescript]);
        Assert.AreEqual(0, code, err);
        string screen = File.ReadAllText(typescript);
        StringAssert.Contains(screen, "\u001b[", "the bar is drawn with escape codes");
        StringAssert.Contains(screen, "399/399 tokens");
        StringAssert.Contains(screen, "100%");
        StringAssert.Contains(screen, "tokens/s");
        StringAssert.Contains(screen, "mean NLL");

        // Redirected: one plain line on stderr, the result alone on stdout.
        (code, string output, err) = Run("dotnet", [dll, "eval", "--model", folder, "--ids", ids, "--stride", "4", "--threads", "1"]);
        Assert.AreEqual(0, code, err);
        StringAssert.StartsWith(err, "eval: 399/399 tokens (100%)");
        Assert.DoesNotContain("\r", err);
        Assert.DoesNotContain("\u001b", err);
        StringAssert.StartsWith(output, "399 tokens scored");
    }

    private static (int Code, string Out, string Err) Run(string file, string[] args)
    {
        var start = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var err = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        Assert.IsTrue(process.WaitForExit(120_000), $"{file} did not finish");
        return (process.ExitCode, output, err.Result);
    }
}

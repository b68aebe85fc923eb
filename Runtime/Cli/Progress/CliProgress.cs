using System.Diagnostics;
using System.Globalization;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace OnnxGpt.Cli.Progress;

/// <summary>
/// Progress of one long piece of work on stderr. On a terminal: a Spectre.Console bar with the count, the rate and the
/// time left, redrawn in place. Redirected to a file or a pipe (or any writer but the console's): a plain line every
/// <see cref="LineInterval"/> and one at the end, so logs get no carriage returns or escape codes. Thread-safe:
/// <see cref="Report"/> may be called from the worker while the bar redraws.
/// </summary>
internal sealed class CliProgress : IProgress<long>, IDisposable
{
    /// <summary>How often the redirected form writes a line.</summary>
    public static readonly TimeSpan LineInterval = TimeSpan.FromSeconds(5);

    private readonly TextWriter _stderr;
    private readonly string _description;
    private readonly string _unit;
    private readonly long _total;
    private readonly long _start = Stopwatch.GetTimestamp();
    private readonly Task? _bar;
    private readonly Timer? _lines;
    private readonly CancellationTokenSource _stop = new();
    private long _done;
    private int _disposed;

    private CliProgress(TextWriter stderr, string description, long total, string unit, TimeSpan interval)
    {
        _stderr = stderr;
        _description = description;
        _total = Math.Max(1, total);
        _unit = unit;
        if (ReferenceEquals(stderr, Console.Error) && !Console.IsErrorRedirected)
        {
            _bar = RunBarAsync();
        }
        else
        {
            _lines = new Timer(_ => WriteLine(final: false), null, interval, interval);
        }
    }

    /// <summary>Shows progress of <paramref name="total"/> <paramref name="unit"/> of work described as <paramref name="description"/>.</summary>
    /// <param name="stderr">Where it goes: the console's stderr gets a bar on a terminal; anything else, lines.</param>
    /// <param name="description">What the work is, first on the bar and on each line.</param>
    /// <param name="total">How much work there is.</param>
    /// <param name="unit">What it is counted in ("tokens").</param>
    /// <param name="lineInterval">How often the lines come; null: <see cref="LineInterval"/>.</param>
    public static CliProgress Start(TextWriter stderr, string description, long total, string unit, TimeSpan? lineInterval = null) =>
        new(stderr, description, total, unit, lineInterval ?? LineInterval);

    /// <summary>How much of the work is done (in the unit given at the start).</summary>
    public void Report(long value) => Interlocked.Exchange(ref _done, Math.Clamp(value, 0, _total));

    /// <summary>Ends the bar (drawn full if the work is done) or writes the last line.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _stop.Cancel();
        if (_bar is not null)
        {
            _bar.GetAwaiter().GetResult();
        }
        else
        {
            _lines!.Dispose();
            WriteLine(final: true);
        }

        _stop.Dispose();
    }

    private async Task RunBarAsync()
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(Console.Error),
            Interactive = InteractionSupport.Yes,
        });
        await console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new CountColumn(_unit),
                new RateColumn(_unit), new RemainingTimeColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask(_description, maxValue: _total);
                while (!_stop.IsCancellationRequested)
                {
                    task.Value = Interlocked.Read(ref _done);
                    try
                    {
                        await Task.Delay(100, _stop.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                }

                task.Value = Interlocked.Read(ref _done);
                context.Refresh();
            }).ConfigureAwait(false);
    }

    private void WriteLine(bool final)
    {
        long done = Interlocked.Read(ref _done);
        double seconds = Stopwatch.GetElapsedTime(_start).TotalSeconds;
        double rate = seconds > 0 ? done / seconds : 0;
        string line = string.Create(CultureInfo.InvariantCulture,
            $"{_description}: {done:N0}/{_total:N0} {_unit} ({100.0 * done / _total:F0}%), {rate:N0} {_unit}/s");
        line += final ? $", {seconds:F1} s" : rate > 0 ? $", {FormatTime((_total - done) / rate)} left" : "";
        lock (_stderr)
        {
            _stderr.WriteLine(line);
        }
    }

    private static string FormatTime(double seconds) => seconds >= 3600
        ? $"{(int)(seconds / 3600)} h {(int)(seconds % 3600 / 60)} min"
        : seconds >= 60 ? $"{(int)(seconds / 60)} min {(int)(seconds % 60)} s" : $"{seconds:F0} s";

    /// <summary>"12,345/300,000 tokens".</summary>
    private sealed class CountColumn(string unit) : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Text(string.Create(CultureInfo.InvariantCulture, $"{task.Value:N0}/{task.MaxValue:N0} {unit}"));
    }

    /// <summary>"1,850 tokens/s".</summary>
    private sealed class RateColumn(string unit) : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Text(task.Speed is { } speed ? string.Create(CultureInfo.InvariantCulture, $"{speed:N0} {unit}/s") : "");
    }
}

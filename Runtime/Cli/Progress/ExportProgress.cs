using System.Text.RegularExpressions;

namespace OnnxGpt.Cli.Progress;

/// <summary>
/// The exporter's progress messages on stderr: its "weights N/TOTAL: ..." messages drive a <see cref="CliProgress"/>
/// (a bar on a terminal, periodic lines when redirected); every other message (a step after the weights) is written
/// as a line of its own once the bar is done.
/// </summary>
internal sealed partial class ExportProgress(TextWriter stderr, string description) : IProgress<string>, IDisposable
{
    private CliProgress? _weights;

    /// <inheritdoc/>
    public void Report(string value)
    {
        var match = WeightsMessage().Match(value);
        if (match.Success)
        {
            _weights ??= CliProgress.Start(stderr, description, long.Parse(match.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture), "tensors");
            _weights.Report(long.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            return;
        }

        Dispose();
        stderr.WriteLine(value);
    }

    /// <summary>Ends the bar, if one is showing.</summary>
    public void Dispose()
    {
        _weights?.Dispose();
        _weights = null;
    }

    [GeneratedRegex(@"^weights (\d+)/(\d+)")]
    private static partial Regex WeightsMessage();
}

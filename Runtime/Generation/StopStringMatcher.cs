namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// Finds stop strings in streamed text that may span several tokens. Feed each decoded piece to
/// <see cref="Push"/>; it returns the text that is safe to show now and holds back a tail that could still
/// become a stop string. When a stop string completes, <see cref="IsStopped"/> turns true, the text before it is
/// returned and the stop string (and anything after it) is dropped. At the end of generation,
/// <see cref="Flush"/> returns the held-back tail. The held-back text is shorter than the longest stop string,
/// so each call costs time in proportion to the piece and the stop strings, not to the text so far.
/// </summary>
public sealed class StopStringMatcher
{
    private readonly string[] _stops;
    private readonly int _longest;
    private string _held = string.Empty;

    /// <exception cref="ArgumentException">A stop string is null or empty.</exception>
    public StopStringMatcher(IReadOnlyList<string> stopStrings)
    {
        ArgumentNullException.ThrowIfNull(stopStrings);
        _stops = new string[stopStrings.Count];
        for (var i = 0; i < _stops.Length; i++)
        {
            if (string.IsNullOrEmpty(stopStrings[i]))
            {
                throw new ArgumentException($"Stop string {i} is empty; a stop string needs at least one character.", nameof(stopStrings));
            }

            _stops[i] = stopStrings[i];
            _longest = Math.Max(_longest, _stops[i].Length);
        }
    }

    /// <summary>True once a stop string has appeared; later pushes return nothing.</summary>
    public bool IsStopped { get; private set; }

    /// <summary>The stop string that ended the text, once <see cref="IsStopped"/>.</summary>
    public string? MatchedStopString { get; private set; }

    /// <summary>Text held back because it may be the start of a stop string.</summary>
    public string HeldText => _held;

    /// <summary>Feeds the next piece of text; returns what can be shown now (possibly empty).</summary>
    public string Push(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (IsStopped || text.Length == 0)
        {
            return string.Empty;
        }

        if (_stops.Length == 0)
        {
            return text;
        }

        var buffer = _held.Length == 0 ? text : _held + text;

        // The earliest stop string wins; at the same position, the one listed first.
        var stopAt = -1;
        foreach (var stop in _stops)
        {
            var at = buffer.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (stopAt < 0 || at < stopAt))
            {
                stopAt = at;
                MatchedStopString = stop;
            }
        }

        if (stopAt >= 0)
        {
            IsStopped = true;
            _held = string.Empty;
            return buffer[..stopAt];
        }

        var hold = LongestSuffixThatStartsAStop(buffer);
        _held = buffer[(buffer.Length - hold)..];
        return buffer[..(buffer.Length - hold)];
    }

    /// <summary>Ends the stream: returns the held-back text (no stop string can complete any more).</summary>
    public string Flush()
    {
        var rest = _held;
        _held = string.Empty;
        return rest;
    }

    /// <summary>Length of the longest suffix of <paramref name="buffer"/> that is a proper prefix of some stop string.</summary>
    private int LongestSuffixThatStartsAStop(string buffer)
    {
        for (var length = Math.Min(_longest - 1, buffer.Length); length > 0; length--)
        {
            var suffix = buffer.AsSpan(buffer.Length - length);
            foreach (var stop in _stops)
            {
                if (stop.Length > length && stop.AsSpan().StartsWith(suffix, StringComparison.Ordinal))
                {
                    return length;
                }
            }
        }

        return 0;
    }
}

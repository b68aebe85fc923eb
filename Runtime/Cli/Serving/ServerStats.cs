using System.Diagnostics;
using System.Text.Json.Nodes;

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// The live figures behind the dashboard (<c>GET /dashboard/stats</c>): completion requests by outcome, tokens
/// generated (and their rate over the last <see cref="RateWindow"/>), time to first token over the last
/// <see cref="TtftWindow"/> as percentiles, process memory, and what the request gate holds now.
/// <para>
/// Its inputs are events, each one call (<see cref="RequestStarted"/>, <see cref="FirstToken"/>,
/// <see cref="TokensGenerated"/>, <see cref="RequestEnded"/>), the shape of a counter's or a histogram's
/// measurement: today the endpoints call them; a <c>System.Diagnostics.Metrics.MeterListener</c> on the runtime's
/// instruments can call the same ones from its measurement callbacks instead, and the snapshot stays the same.
/// </para>
/// Thread-safe; recording is a few interlocked operations and, per token, one short lock.
/// </summary>
internal sealed class ServerStats
{
    /// <summary>Tokens per second are the tokens of this last stretch of time, divided by its length.</summary>
    public static readonly TimeSpan RateWindow = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Time-to-first-token percentiles cover the requests whose first token came in this last stretch (at most the
    /// latest 4096 of them).
    /// </summary>
    public static readonly TimeSpan TtftWindow = TimeSpan.FromSeconds(60);

    private const int BucketMs = 250;
    private const int RateBuckets = 8;           // RateWindow / BucketMs
    private const int TtftCapacity = 4096;       // the most recent first tokens kept, within TtftWindow

    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Lock _lock = new();
    private readonly long[] _bucketId = new long[RateBuckets * 2];
    private readonly long[] _bucketTokens = new long[RateBuckets * 2];
    private readonly (long AtMs, double Ms)[] _ttft = new (long, double)[TtftCapacity];
    private int _ttftNext;
    private int _ttftCount;

    private long _requests;
    private long _completed;
    private long _cancelled;
    private long _refused;
    private long _generated;
    private long _firstTokens;

    /// <summary>How a completion request ended.</summary>
    public enum Outcome
    {
        /// <summary>The reply was sent whole.</summary>
        Completed,

        /// <summary>The client went away (closed the connection, or pressed stop in the chat page).</summary>
        Cancelled,

        /// <summary>An error response (bad request, unknown model, server busy, a failure).</summary>
        Refused,
    }

    /// <summary>A completion request arrived.</summary>
    public void RequestStarted() => Interlocked.Increment(ref _requests);

    /// <summary>A request ended as <paramref name="outcome"/>.</summary>
    public void RequestEnded(Outcome outcome)
    {
        switch (outcome)
        {
            case Outcome.Completed:
                Interlocked.Increment(ref _completed);
                break;
            case Outcome.Cancelled:
                Interlocked.Increment(ref _cancelled);
                break;
            default:
                Interlocked.Increment(ref _refused);
                break;
        }
    }

    /// <summary>A request's first text came <paramref name="sinceArrival"/> after the request arrived.</summary>
    public void FirstToken(TimeSpan sinceArrival)
    {
        long now = _clock.ElapsedMilliseconds;
        Interlocked.Increment(ref _firstTokens);
        lock (_lock)
        {
            _ttft[_ttftNext] = (now, sinceArrival.TotalMilliseconds);
            _ttftNext = (_ttftNext + 1) % TtftCapacity;
            _ttftCount = Math.Min(_ttftCount + 1, TtftCapacity);
        }
    }

    /// <summary><paramref name="count"/> tokens were generated now (a negative count corrects an earlier estimate).</summary>
    public void TokensGenerated(int count)
    {
        if (count == 0)
        {
            return;
        }

        Interlocked.Add(ref _generated, count);
        long id = _clock.ElapsedMilliseconds / BucketMs;
        int slot = (int)(id % _bucketId.Length);
        lock (_lock)
        {
            if (_bucketId[slot] != id)
            {
                _bucketId[slot] = id;
                _bucketTokens[slot] = 0;
            }

            _bucketTokens[slot] += count;
        }
    }

    /// <summary>
    /// The figures now, as the dashboard's JSON. <paramref name="generating"/> and <paramref name="waiting"/> are the
    /// request gate's counts (or the batch engine's); <paramref name="parallel"/> and <paramref name="queue"/> its limits;
    /// <paramref name="batch"/> the batch engine's occupancy (sequences decoding, slots), null without one.
    /// </summary>
    public JsonObject Snapshot(string modelId, int generating, int waiting, int parallel, int queue, (int Size, int Capacity)? batch = null)
    {
        long now = _clock.ElapsedMilliseconds;
        long current = now / BucketMs;
        long windowTokens = 0;
        var recent = new List<double>();
        lock (_lock)
        {
            // The window is the RateBuckets whole buckets before the one filling now.
            for (int i = 0; i < _bucketId.Length; i++)
            {
                if (_bucketId[i] < current && _bucketId[i] >= current - RateBuckets)
                {
                    windowTokens += _bucketTokens[i];
                }
            }

            for (int i = 0; i < _ttftCount; i++)
            {
                var (at, ms) = _ttft[i];
                if (now - at <= TtftWindow.TotalMilliseconds)
                {
                    recent.Add(ms);
                }
            }
        }

        recent.Sort();
        return new JsonObject
        {
            ["model"] = modelId,
            ["uptime_ms"] = now,
            ["requests"] = new JsonObject
            {
                ["generating"] = generating,
                ["waiting"] = waiting,
                ["parallel"] = parallel,
                ["queue_limit"] = queue,
                ["total"] = Interlocked.Read(ref _requests),
                ["completed"] = Interlocked.Read(ref _completed),
                ["cancelled"] = Interlocked.Read(ref _cancelled),
                ["refused"] = Interlocked.Read(ref _refused),
            },
            ["tokens"] = new JsonObject
            {
                ["generated"] = Interlocked.Read(ref _generated),
                ["per_second"] = Math.Round(windowTokens / RateWindow.TotalSeconds, 1),
                ["rate_window_ms"] = (long)RateWindow.TotalMilliseconds,
            },
            ["ttft_ms"] = new JsonObject
            {
                ["count"] = recent.Count,
                ["total"] = Interlocked.Read(ref _firstTokens),
                ["p50"] = Percentile(recent, 50),
                ["p90"] = Percentile(recent, 90),
                ["p99"] = Percentile(recent, 99),
                ["window_ms"] = (long)TtftWindow.TotalMilliseconds,
            },
            ["memory"] = new JsonObject
            {
                ["working_set_bytes"] = Environment.WorkingSet,
                ["managed_heap_bytes"] = GC.GetTotalMemory(forceFullCollection: false),
            },
            // Batch occupancy: the batch engine's sequences in its slots; null where each request generates alone.
            ["batch"] = batch is { } b ? new JsonObject { ["size"] = b.Size, ["capacity"] = b.Capacity } : null,
        };
    }

    /// <summary>Nearest-rank percentile of sorted values; null when there are none.</summary>
    internal static double? Percentile(IReadOnlyList<double> sorted, double percent)
    {
        if (sorted.Count == 0)
        {
            return null;
        }

        int rank = (int)Math.Ceiling(percent / 100 * sorted.Count);
        return Math.Round(sorted[Math.Clamp(rank, 1, sorted.Count) - 1], 1);
    }
}

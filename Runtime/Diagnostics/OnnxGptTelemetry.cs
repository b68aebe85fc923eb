using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace OnnxGpt.Runtime.Diagnostics;

/// <summary>
/// The runtime's traces and metrics, named after OpenTelemetry's semantic conventions for generative AI: one
/// <see cref="ActivitySource"/> and one <see cref="Meter"/>, both named <see cref="SourceName"/>. Listen with
/// OpenTelemetry (<c>.AddSource(OnnxGptTelemetry.SourceName)</c>, <c>.AddMeter(OnnxGptTelemetry.SourceName)</c>) or
/// with a <see cref="MeterListener"/>/<see cref="ActivityListener"/>.
/// <list type="bullet">
/// <item><c>gen_ai.client.token.usage</c> (histogram, <c>{token}</c>, <c>gen_ai.token.type</c> = input | output): tokens per request;</item>
/// <item><c>gen_ai.server.request.duration</c> (histogram, s): from the request to its last token;</item>
/// <item><c>gen_ai.server.time_to_first_token</c> (histogram, s): from the request to its first generated token;</item>
/// <item><c>gen_ai.server.time_per_output_token</c> (histogram, s): decoding time per token after the first;</item>
/// <item>for a server: <c>onnxgpt.server.queue.length</c> (requests waiting), <c>onnxgpt.server.active_sequences</c>
/// (sequences generating), both up-down counters, and <c>onnxgpt.server.batch.size</c> (histogram, sequences per model
/// step), which a scheduler feeds through <see cref="QueueLength"/>, <see cref="ActiveSequences"/> and <see cref="BatchSize"/>.</item>
/// </list>
/// Every request measurement carries <c>gen_ai.operation.name</c> (<c>chat</c> or <c>text_completion</c>),
/// <c>gen_ai.provider.name</c> (<c>onnxgpt</c>), <c>gen_ai.request.model</c> and <c>gen_ai.response.model</c>; the
/// token usage also <c>gen_ai.token.type</c>. Each request is an activity named <c>"{operation} {model}"</c> with the
/// request's sampling settings, the usage and the finish reason as <c>gen_ai.*</c> tags.
/// </summary>
public static class OnnxGptTelemetry
{
    /// <summary>The name of the activity source and of the meter.</summary>
    public const string SourceName = "OnnxGpt.Runtime";

    /// <summary>The provider name in every measurement and span (<c>gen_ai.provider.name</c>).</summary>
    public const string ProviderName = "onnxgpt";

    private static readonly string? Version = typeof(OnnxGptTelemetry).Assembly.GetName().Version?.ToString(3);

    // The buckets OpenTelemetry's semantic conventions advise for each instrument.
    private static readonly double[] DurationBuckets = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
    private static readonly double[] FirstTokenBuckets = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
    private static readonly double[] PerTokenBuckets = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5];
    private static readonly long[] TokenBuckets = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];

    /// <summary>The runtime's spans: one per generation request.</summary>
    public static ActivitySource ActivitySource { get; } = new(SourceName, Version);

    /// <summary>The runtime's instruments.</summary>
    public static Meter Meter { get; } = new(SourceName, Version);

    /// <summary><c>gen_ai.client.token.usage</c>: input and output tokens per request.</summary>
    public static Histogram<long> TokenUsage { get; } = Meter.CreateHistogram("gen_ai.client.token.usage", "{token}",
        "Number of input and output tokens used.", tags: null, new InstrumentAdvice<long> { HistogramBucketBoundaries = TokenBuckets });

    /// <summary><c>gen_ai.server.request.duration</c>: seconds from a request to its last token.</summary>
    public static Histogram<double> RequestDuration { get; } = Meter.CreateHistogram("gen_ai.server.request.duration", "s",
        "Generative AI server request duration such as time-to-last byte or last output token.", tags: null,
        new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });

    /// <summary><c>gen_ai.server.time_to_first_token</c>: seconds from a request to its first generated token.</summary>
    public static Histogram<double> TimeToFirstToken { get; } = Meter.CreateHistogram("gen_ai.server.time_to_first_token", "s",
        "Time to generate first token for successful responses.", tags: null,
        new InstrumentAdvice<double> { HistogramBucketBoundaries = FirstTokenBuckets });

    /// <summary><c>gen_ai.server.time_per_output_token</c>: seconds per output token after the first.</summary>
    public static Histogram<double> TimePerOutputToken { get; } = Meter.CreateHistogram("gen_ai.server.time_per_output_token", "s",
        "Time per output token generated after the first token for successful responses.", tags: null,
        new InstrumentAdvice<double> { HistogramBucketBoundaries = PerTokenBuckets });

    /// <summary><c>onnxgpt.server.queue.length</c>: requests waiting for a slot (add 1 when one starts waiting, -1 when it leaves the queue).</summary>
    public static UpDownCounter<long> QueueLength { get; } = Meter.CreateUpDownCounter<long>("onnxgpt.server.queue.length", "{request}",
        "Requests waiting for a free generation slot.");

    /// <summary><c>onnxgpt.server.active_sequences</c>: sequences generating now (add 1 when one starts, -1 when it ends).</summary>
    public static UpDownCounter<long> ActiveSequences { get; } = Meter.CreateUpDownCounter<long>("onnxgpt.server.active_sequences", "{sequence}",
        "Sequences generating now.");

    /// <summary><c>onnxgpt.server.batch.size</c>: sequences in one model step (a batching scheduler records one value per step).</summary>
    public static Histogram<long> BatchSize { get; } = Meter.CreateHistogram("onnxgpt.server.batch.size", "{sequence}",
        "Sequences run together in one model step.", tags: null, new InstrumentAdvice<long> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128] });
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.AI;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Diagnostics;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Diagnostics;

/// <summary>
/// The runtime's gen-AI instruments and spans, seen by a <see cref="MeterListener"/> and an
/// <see cref="ActivityListener"/> for a known request: the usage they report is the response's, the times are in
/// order, and every measurement names the operation, provider and model.
/// </summary>
[TestClass]
public sealed class OnnxGptTelemetryTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public async Task AKnownRequestIsMeasuredAndTraced()
    {
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(ChatModels.ExportTinyGpt2(tmp));
        // A model id no other test uses: measurements are told apart by their gen_ai.request.model tag.
        string id = "telemetry-" + Guid.NewGuid().ToString("N")[..8];
        using var client = new OnnxGptChatClient(model, new OnnxGptChatClientOptions { ModelId = id });

        var measurements = new ConcurrentQueue<(string Instrument, double Value, Dictionary<string, object?> Tags)>();
        using var meters = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == OnnxGptTelemetry.SourceName)
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            },
        };
        void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var map = new Dictionary<string, object?>();
            foreach (var tag in tags)
            {
                map[tag.Key] = tag.Value;
            }

            if (Equals(map.GetValueOrDefault("gen_ai.request.model"), id))
            {
                measurements.Enqueue((instrument.Name, value, map));
            }
        }

        meters.SetMeasurementEventCallback<long>((i, v, t, _) => Add(i, v, t));
        meters.SetMeasurementEventCallback<double>((i, v, t, _) => Add(i, v, t));
        meters.Start();
        var activities = new ConcurrentQueue<Activity>();
        using var spans = new ActivityListener
        {
            ShouldListenTo = s => s.Name == OnnxGptTelemetry.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                if (Equals(a.GetTagItem("gen_ai.request.model"), id))
                {
                    activities.Enqueue(a);
                }
            },
        };
        ActivitySource.AddActivityListener(spans);

        var response = await client.GetResponseAsync("Tell me a story", new ChatOptions { MaxOutputTokens = 5, Temperature = 0 }, TestContext.CancellationToken);
        var usage = response.Usage!;
        Assert.AreEqual(5, usage.OutputTokenCount);

        double Single(string instrument, string? tokenType = null) => measurements
            .Where(m => m.Instrument == instrument && (tokenType is null || Equals(m.Tags["gen_ai.token.type"], tokenType)))
            .Select(m => m.Value).Single();
        Assert.AreEqual((double)usage.InputTokenCount!, Single("gen_ai.client.token.usage", "input"));
        Assert.AreEqual(5.0, Single("gen_ai.client.token.usage", "output"));
        double duration = Single("gen_ai.server.request.duration");
        double firstToken = Single("gen_ai.server.time_to_first_token");
        double perToken = Single("gen_ai.server.time_per_output_token");
        Assert.IsGreaterThan(0.0, firstToken);
        Assert.IsLessThanOrEqualTo(duration, firstToken, "the first token comes before the last");
        Assert.AreEqual(duration - firstToken, perToken * 4, 1e-3, "four tokens after the first");
        foreach (var (_, _, tags) in measurements)
        {
            Assert.AreEqual("chat", tags["gen_ai.operation.name"]);
            Assert.AreEqual("onnxgpt", tags["gen_ai.provider.name"]);
            Assert.AreEqual(id, tags["gen_ai.response.model"]);
        }

        var span = activities.Single();
        Assert.AreEqual($"chat {id}", span.DisplayName);
        Assert.AreEqual(5, span.GetTagItem("gen_ai.usage.output_tokens"));
        Assert.AreEqual(5, span.GetTagItem("gen_ai.request.max_tokens"));
        CollectionAssert.AreEqual(new[] { "length" }, (string[])span.GetTagItem("gen_ai.response.finish_reasons")!);
        Assert.AreEqual(ActivityStatusCode.Unset, span.Status);
    }
}

using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;
using OnnxGpt.Cli.Serving;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary>
/// The server over the batch engine (a fused graph): concurrent streaming clients each get the text their prompt gets
/// alone, a client that goes away frees its slot at once, and beyond the slots and the queue the answer is 503.
/// </summary>
[TestClass]
[DoNotParallelize]   // the tests share one engine and count its slots
public sealed class BatchedServingTests
{
    private const string ModelId = "batched";
    private const int Slots = 3;

    /// <summary>The printable ASCII characters: the model's vocabulary, one token each.</summary>
    private static readonly string[] Characters = Enumerable.Range(32, 95).Select(c => ((char)c).ToString()).ToArray();

    private static TempFolder? s_tmp;
    private static GptModel? s_model;
    private static OnnxGptChatClient? s_served;
    private static OnnxGptChatClient? s_alone;
    private static OpenAiServer? s_server;
    private static HttpClient? s_http;

    public TestContext TestContext { get; set; } = null!;

    private static HttpClient Http => s_http!;

    private CancellationToken Cancel => TestContext.CancellationToken;

    [ClassInitialize]
    public static async Task Initialize(TestContext context)
    {
        s_tmp = new TempFolder();
        // Wide enough that a long reply takes a while (a client can go away in the middle of it).
        var config = new GptConfig { VocabSize = Characters.Length, ContextLength = 1024, Width = 256, Layers = 6, Heads = 4 };
        var options = new ExportOptions
        {
            Graph = new GraphOptions { Flavor = GraphFlavor.Fused },
            Tokenizer = new TokenizerSpec { Kind = TokenizerSpec.CharKind, Characters = Characters },
        };
        s_model = GptModel.Load(TestModels.Export(TestWeights.Random(config, seed: 121, scale: 0.05), s_tmp, options: options));
        s_served = new OnnxGptChatClient(s_model, new OnnxGptChatClientOptions { ModelId = ModelId, BatchSlots = Slots, MaxQueuedRequests = 1 });
        s_alone = new OnnxGptChatClient(s_model, new OnnxGptChatClientOptions { BatchSlots = 0, MaxCachedConversations = 0 });
        s_server = await OpenAiServer.StartAsync(s_served, new ServerOptions { Urls = "http://127.0.0.1:0", MaxConcurrentRequests = Slots, MaxQueuedRequests = 1 },
            cancellationToken: context.CancellationToken);
        // A response disposed before its end closes the connection (by default the handler reads up to 1 MB of the
        // rest to reuse it, and the server would never see the client go).
        s_http = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = new Uri(s_server.Urls[0]), Timeout = TimeSpan.FromSeconds(60) };
    }

    [ClassCleanup]
    public static async Task Cleanup()
    {
        s_http?.Dispose();
        if (s_server is not null)
        {
            await s_server.DisposeAsync();
        }

        s_served?.Dispose();
        s_alone?.Dispose();
        s_model?.Dispose();
        s_tmp?.Dispose();
    }

    [TestMethod]
    public async Task ConcurrentStreamingClientsEachGetTheirOwnSoloGreedyText()
    {
        Assert.IsNotNull(s_served!.Engine, "a fused graph is served through the batch engine");
        Assert.IsNull(s_alone!.Engine);
        string[] prompts = ["The sea", "A quick brown fox", "0123456789", "Once upon a time, there was", "Hi", "~~~~"];
        int[] lengths = [20, 9, 31, 14, 25, 5];
        var expected = new string[prompts.Length];
        for (int i = 0; i < prompts.Length; i++)
        {
            expected[i] = (await s_alone.CompleteStreamingAsync(prompts[i], Greedy(lengths[i]), Cancel).ToChatResponseAsync(Cancel)).Text;
        }

        long stepsBefore = s_served.Engine.GetStatistics().Steps;
        // More clients than slots: the last wait in the queue (one place) and join as others leave.
        var streamed = await Task.WhenAll(prompts.Take(Slots + 1).Select((p, i) => StreamAsync(p, lengths[i])));
        var rest = await Task.WhenAll(prompts.Skip(Slots + 1).Select((p, i) => StreamAsync(p, lengths[Slots + 1 + i])));
        string[] texts = [.. streamed.Select(s => s.Text), .. rest.Select(s => s.Text)];
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.AreEqual(expected[i], texts[i], $"client {i} ('{prompts[i]}') got another text than its prompt alone");
            Assert.AreEqual("length", (streamed.Concat(rest).ElementAt(i)).Finish);
        }

        long steps = s_served.Engine.GetStatistics().Steps - stepsBefore;
        Assert.IsLessThan(lengths.Sum(), steps, $"the clients shared steps: {steps} steps for {lengths.Sum()} tokens");
    }

    [TestMethod]
    public async Task ClientThatGoesAwayFreesItsSlotAtOnce()
    {
        var engine = s_served!.Engine!;
        await WaitIdleAsync();
        long before = engine.GetStatistics().GeneratedTokens;
        const int Asked = 900;
        using (var response = await SendStreamingAsync("Go on and on", Asked))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Cancel));
            StringAssert.StartsWith(await reader.ReadLineAsync(Cancel), "data: {");
            Assert.AreEqual(1, engine.GetStatistics().ActiveSequences, "the request holds a slot while it streams");
        }

        await WaitIdleAsync();
        long generated = engine.GetStatistics().GeneratedTokens - before;
        Assert.IsLessThan(Asked / 2, generated, $"the request went on for {generated} of its {Asked} tokens after its client left");
    }

    [TestMethod]
    public async Task BeyondTheSlotsAndTheQueueTheAnswerIs503()
    {
        await WaitIdleAsync();
        var held = new List<HttpResponseMessage>();
        Task<HttpResponseMessage> queued;
        try
        {
            for (int i = 0; i < Slots; i++)
            {
                held.Add(await SendStreamingAsync($"Hold slot {i}", 900));
            }

            queued = SendStreamingAsync("I wait my turn", 4);   // the one place in the queue
            await WaitUntilAsync(() => s_served!.Engine!.GetStatistics().QueuedRequests == 1);
            using var refused = await Http.PostAsync("/v1/completions", Body("No room for me", 4, stream: false), Cancel);
            Assert.AreEqual(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            using var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync(Cancel));
            Assert.AreEqual("server_busy", error.RootElement.GetProperty("error").GetProperty("code").GetString());

            // The dashboard's figures come from the engine: every slot busy, one waiting.
            using var stats = JsonDocument.Parse(await Http.GetStringAsync("/dashboard/stats", Cancel));
            var batch = stats.RootElement.GetProperty("batch");
            Assert.AreEqual(Slots, batch.GetProperty("size").GetInt32());
            Assert.AreEqual(Slots, batch.GetProperty("capacity").GetInt32());
            Assert.AreEqual(Slots, stats.RootElement.GetProperty("requests").GetProperty("generating").GetInt32());
            Assert.AreEqual(1, stats.RootElement.GetProperty("requests").GetProperty("waiting").GetInt32());
        }
        finally
        {
            foreach (var response in held)
            {
                response.Dispose();   // the clients go away: their slots free up
            }
        }

        using (var waited = await queued)
        {
            Assert.AreEqual(HttpStatusCode.OK, waited.StatusCode, "the queued request got a slot");
        }

        await WaitIdleAsync();
        using var served = await Http.PostAsync("/v1/completions", Body("Room again", 3, stream: false), Cancel);
        Assert.AreEqual(HttpStatusCode.OK, served.StatusCode);
    }

    [TestMethod]
    public async Task TimingsAskedForSplitTheFirstTokenInOrder()
    {
        await WaitIdleAsync();
        var body = JsonSerializer.Serialize(new
        {
            model = ModelId, prompt = "Time me", max_tokens = 3, temperature = 0, stream = true,
            stream_options = new { include_usage = true, include_timings = true },
        });
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Cancel);
        var lines = (await response.Content.ReadAsStringAsync(Cancel)).Split('\n').Where(l => l.StartsWith("data: {", StringComparison.Ordinal)).ToList();
        using var last = JsonDocument.Parse(lines[^1]["data: ".Length..]);
        Assert.AreEqual(3, last.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        var timings = last.RootElement.GetProperty("timings");
        Assert.AreEqual(JsonValueKind.Null, timings.GetProperty("run_in_flight_since_ms").ValueKind, "the engine was idle when the request came");
        string[] order = ["submitted_ms", "placed_ms", "prompt_started_ms", "prompt_fed_ms", "first_token_ms", "first_sent_ms"];
        double previous = 0;
        foreach (string name in order)
        {
            double ms = timings.GetProperty(name).GetDouble();
            Assert.IsGreaterThanOrEqualTo(previous, ms, $"{name} ({ms} ms) comes before the step ahead of it ({previous} ms): {timings}");
            previous = ms;
        }

        Assert.IsLessThan(20_000.0, previous);
        foreach (string line in lines.SkipLast(1))
        {
            StringAssert.DoesNotMatch(line, new System.Text.RegularExpressions.Regex("timings"), "only the last chunk carries them");
        }

        // Not asked for: none.
        var plain = await StreamLinesAsync("Time me", 2);
        Assert.IsFalse(plain.Any(l => l.Contains("timings", StringComparison.Ordinal)), string.Join("\n", plain));
    }

    private async Task<List<string>> StreamLinesAsync(string prompt, int tokens)
    {
        using var response = await SendStreamingAsync(prompt, tokens);
        return [.. (await response.Content.ReadAsStringAsync(Cancel)).Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal))];
    }

    private static ChatOptions Greedy(int tokens) => new() { Temperature = 0, MaxOutputTokens = tokens };

    private static StringContent Body(string prompt, int tokens, bool stream) => new(
        JsonSerializer.Serialize(new { model = ModelId, prompt, max_tokens = tokens, temperature = 0, stream }), Encoding.UTF8, "application/json");

    private async Task<HttpResponseMessage> SendStreamingAsync(string prompt, int tokens)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Body(prompt, tokens, stream: true) };
        var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Cancel);
        Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, response.StatusCode == HttpStatusCode.OK ? "" : await response.Content.ReadAsStringAsync(Cancel));
        return response;
    }

    /// <summary>One streaming completion read to [DONE]: its text and finish reason.</summary>
    private async Task<(string Text, string? Finish)> StreamAsync(string prompt, int tokens)
    {
        using var response = await SendStreamingAsync(prompt, tokens);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Cancel));
        var text = new StringBuilder();
        string? finish = null;
        while (await reader.ReadLineAsync(Cancel) is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal) || line == "data: [DONE]")
            {
                continue;
            }

            using var chunk = JsonDocument.Parse(line["data: ".Length..]);
            var choice = chunk.RootElement.GetProperty("choices")[0];
            text.Append(choice.GetProperty("text").GetString());
            if (choice.GetProperty("finish_reason").ValueKind == JsonValueKind.String)
            {
                finish = choice.GetProperty("finish_reason").GetString();
            }
        }

        return (text.ToString(), finish);
    }

    private static Task WaitIdleAsync() => WaitUntilAsync(() => s_served!.Engine!.GetStatistics() is { ActiveSequences: 0, QueuedRequests: 0 });

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.IsLessThan(20.0, clock.Elapsed.TotalSeconds, "the engine did not get there within 20 s");
            await Task.Delay(5);
        }
    }
}

using System.Text;
using System.Text.RegularExpressions;
using OnnxGpt.Cli.Serving;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary><c>onnxgpt serve --metrics</c>: /metrics in Prometheus' text format, with the gen-AI series after one request.</summary>
[TestClass]
public sealed class ServerMetricsTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public async Task MetricsEndpointServesGenAiSeriesAfterOneRequest()
    {
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(ChatModels.ExportTinyGpt2(tmp));
        string id = "metrics-" + Guid.NewGuid().ToString("N")[..8];
        using var client = new OnnxGptChatClient(model, new OnnxGptChatClientOptions { ModelId = id });
        var cancel = TestContext.CancellationToken;
        await using var server = await OpenAiServer.StartAsync(client, new ServerOptions
        {
            Urls = "http://127.0.0.1:0",
            Telemetry = new ServerTelemetry { PrometheusEndpoint = true },
        }, cancellationToken: cancel);
        using var http = new HttpClient { BaseAddress = new Uri(server.Urls[0]), Timeout = TimeSpan.FromSeconds(30) };

        string body = $$"""{"model":"{{id}}","messages":[{"role":"user","content":"Hello"}],"max_tokens":3,"temperature":0}""";
        using (var reply = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"), cancel))
        {
            Assert.AreEqual(200, (int)reply.StatusCode, await reply.Content.ReadAsStringAsync(cancel));
        }

        using var scrape = await http.GetAsync("/metrics", cancel);
        string text = await scrape.Content.ReadAsStringAsync(cancel);
        Assert.AreEqual(200, (int)scrape.StatusCode, text);
        Assert.AreEqual("text/plain", scrape.Content.Headers.ContentType?.MediaType, "Prometheus' text exposition format");
        StringAssert.Contains(text, "# TYPE gen_ai_client_token_usage histogram");
        StringAssert.Contains(text, "# TYPE gen_ai_server_time_to_first_token_seconds histogram");
        StringAssert.Contains(text, "# TYPE gen_ai_server_request_duration_seconds histogram");

        // This request's series, told apart by its model label: three output tokens, one request timed.
        string Series(string name, string extra = "") =>
            text.Split('\n').Single(l => l.StartsWith(name + "{", StringComparison.Ordinal) && l.Contains($"gen_ai_request_model=\"{id}\"", StringComparison.Ordinal)
                && l.Contains(extra, StringComparison.Ordinal));
        double Value(string line) => double.Parse(Regex.Match(line, @"\} (\S+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.AreEqual(3.0, Value(Series("gen_ai_client_token_usage_sum", "gen_ai_token_type=\"output\"")));
        Assert.AreEqual(1.0, Value(Series("gen_ai_client_token_usage_count", "gen_ai_token_type=\"input\"")));
        Assert.AreEqual(1.0, Value(Series("gen_ai_server_time_to_first_token_seconds_count")));
        StringAssert.Contains(Series("gen_ai_server_time_to_first_token_seconds_count"), "gen_ai_provider_name=\"onnxgpt\"");
    }

    [TestMethod]
    public async Task WithoutTheFlagThereIsNoMetricsEndpoint()
    {
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(ChatModels.ExportTinyGpt2(tmp));
        using var client = new OnnxGptChatClient(model);
        await using var server = await OpenAiServer.StartAsync(client, new ServerOptions { Urls = "http://127.0.0.1:0" }, cancellationToken: TestContext.CancellationToken);
        using var http = new HttpClient { BaseAddress = new Uri(server.Urls[0]) };
        using var scrape = await http.GetAsync("/metrics", TestContext.CancellationToken);
        Assert.AreEqual(404, (int)scrape.StatusCode);
    }
}

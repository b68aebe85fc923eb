using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Cli;
using OnnxGpt.Cli.Serving;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary>
/// The server's browser side over HTTP, without a browser: the pages and their files come from inside the tool
/// with a strict Content-Security-Policy, <c>--no-ui</c> removes every route of theirs, the dashboard's figures
/// count what happened, and pages of other origins are refused unless <c>--cors-origin</c> names them.
/// </summary>
[TestClass]
public sealed partial class WebUiServerTests
{
    private static GptModel? s_model;

    public TestContext TestContext { get; set; } = null!;

    private CancellationToken Cancel => TestContext.CancellationToken;

    private static string ShakespeareFolder => Path.Combine(TestPaths.RepoRoot, "models", "shakespeare-char");

    private static string SourceFolder => Path.Combine(TestPaths.RepoRoot, "Runtime", "Cli", "Serving", "WebUi");

    [ClassInitialize]
    public static void Initialize(TestContext context) => s_model = GptModel.Load(ShakespeareFolder);

    [ClassCleanup]
    public static void Cleanup() => s_model?.Dispose();

    [TestMethod]
    public async Task PagesAndTheirFilesAreTheSourceFilesServedWithAStrictPolicy()
    {
        await using var server = await StartAsync(new ServerOptions());
        using var http = Client(server);
        string[] sources = [.. Directory.GetFiles(SourceFolder).Select(Path.GetFileName).Order()!];
        CollectionAssert.AreEquivalent(sources, WebUiAssets.Embedded.Names.ToArray(), "every file of the folder is compiled into the tool, and nothing else");

        foreach (var (path, file, type) in new[]
        {
            ("/", "chat.html", "text/html"), ("/dashboard", "dashboard.html", "text/html"), ("/ui/chat.js", "chat.js", "text/javascript"),
            ("/ui/dashboard.js", "dashboard.js", "text/javascript"), ("/ui/charts.js", "charts.js", "text/javascript"),
            ("/ui/style.css", "style.css", "text/css"), ("/ui/icon.svg", "icon.svg", "image/svg+xml"),
        })
        {
            using var response = await http.GetAsync(path, Cancel);
            Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, path);
            Assert.AreEqual(type, response.Content.Headers.ContentType?.MediaType, path);
            CollectionAssert.AreEqual(File.ReadAllBytes(Path.Combine(SourceFolder, file)), await response.Content.ReadAsByteArrayAsync(Cancel), path);
            string policy = string.Join(";", response.Headers.GetValues("Content-Security-Policy"));
            Assert.AreEqual(WebUiEndpoints.ContentSecurityPolicy, policy, path);
            StringAssert.Contains(policy, "default-src 'none'");
            StringAssert.Contains(policy, "script-src 'self';");
            StringAssert.Contains(policy, "connect-src 'self';");
            StringAssert.Contains(policy, "frame-ancestors 'none'");
            StringAssert.Contains(policy, "require-trusted-types-for 'script'");
            Assert.DoesNotContain("unsafe", policy, "no unsafe-inline or unsafe-eval");
            Assert.AreEqual("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single(), path);

            using var again = new HttpRequestMessage(HttpMethod.Get, path);
            again.Headers.TryAddWithoutValidation("If-None-Match", response.Headers.ETag!.Tag);
            using var cached = await http.SendAsync(again, Cancel);
            Assert.AreEqual(HttpStatusCode.NotModified, cached.StatusCode, $"{path}: the browser's copy is still good");
        }

        using var missing = await http.GetAsync("/ui/missing.js", Cancel);
        Assert.AreEqual(HttpStatusCode.NotFound, missing.StatusCode);
        StringAssert.Contains(await missing.Content.ReadAsStringAsync(Cancel), "unknown_url");
    }

    [TestMethod]
    public void PagesNeedNothingThePolicyBlocks()
    {
        // The policy allows files from this server only and no inline script or style: the pages must use nothing else.
        foreach (string page in new[] { "chat.html", "dashboard.html" })
        {
            string html = File.ReadAllText(Path.Combine(SourceFolder, page));
            Assert.IsFalse(InlineScript().IsMatch(html), $"{page} has an inline script");
            Assert.DoesNotContain("<style", html, $"{page} has an inline style sheet");
            Assert.DoesNotContain(" style=", html, $"{page} has a style attribute");
            Assert.IsFalse(Regex.IsMatch(html, @"\son[a-z]+="), $"{page} has an inline event handler");
            var links = Reference().Matches(html).Select(m => m.Groups[1].Value).ToList();
            Assert.IsNotEmpty(links);
            foreach (string link in links)
            {
                Assert.IsTrue(link == "/" || link == "/dashboard" || WebUiAssets.Embedded.Find(link.Replace("/ui/", "")) is not null && link.StartsWith("/ui/", StringComparison.Ordinal),
                    $"{page} refers to {link}, which this server does not serve");
            }
        }

        foreach (string script in new[] { "chat.js", "dashboard.js", "charts.js" })
        {
            string js = File.ReadAllText(Path.Combine(SourceFolder, script));
            Assert.IsFalse(Regex.IsMatch(js, @"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function"), $"{script} uses an HTML sink or eval");
        }
    }

    [TestMethod]
    public async Task NoUiRemovesThePagesTheFilesAndTheStats()
    {
        await using var server = await StartAsync(new ServerOptions { WebUi = false });
        using var http = Client(server);
        foreach (string path in new[] { "/", "/dashboard", "/dashboard/stats", "/ui/chat.js", "/ui/style.css" })
        {
            using var response = await http.GetAsync(path, Cancel);
            Assert.AreEqual(HttpStatusCode.NotFound, response.StatusCode, path);
            StringAssert.Contains(await response.Content.ReadAsStringAsync(Cancel), "\"error\":", path);
        }

        using var models = await http.GetAsync("/v1/models", Cancel);
        Assert.AreEqual(HttpStatusCode.OK, models.StatusCode, "the API stays");
    }

    [TestMethod]
    public async Task StatsCountRequestsTokensAndFirstTokens()
    {
        await using var server = await StartAsync(new ServerOptions { MaxConcurrentRequests = 3, MaxQueuedRequests = 5 });
        using var http = Client(server);
        var before = await StatsAsync(http);
        Assert.AreEqual("shakespeare-char", before.GetProperty("model").GetString());
        Assert.AreEqual(3, before.GetProperty("requests").GetProperty("parallel").GetInt32());
        Assert.AreEqual(5, before.GetProperty("requests").GetProperty("queue_limit").GetInt32());
        Assert.AreEqual(0, before.GetProperty("requests").GetProperty("total").GetInt64());
        Assert.AreEqual(JsonValueKind.Null, before.GetProperty("ttft_ms").GetProperty("p50").ValueKind, "no first token yet");
        Assert.IsGreaterThan(0L, before.GetProperty("memory").GetProperty("working_set_bytes").GetInt64());

        int generated = 0;
        foreach (bool stream in new[] { false, true })
        {
            string body = """{"model":"shakespeare-char","messages":[{"role":"user","content":"Speak."}],"max_tokens":12,"temperature":0.8,"seed":3,"stream_options":{"include_usage":true},"stream":"""
                + (stream ? "true}" : "false}");
            using var response = await PostAsync(http, body);
            string answer = await response.Content.ReadAsStringAsync(Cancel);
            Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, answer);
            var usage = Regex.Match(answer, "\"completion_tokens\":(\\d+)");
            generated += int.Parse(usage.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        }

        using (var bad = await PostAsync(http, """{"model":"shakespeare-char","messages":[]}"""))
        {
            Assert.AreEqual(HttpStatusCode.BadRequest, bad.StatusCode);
        }

        var after = await StatsAsync(http);
        var requests = after.GetProperty("requests");
        Assert.AreEqual(3, requests.GetProperty("total").GetInt64());
        Assert.AreEqual(2, requests.GetProperty("completed").GetInt64());
        Assert.AreEqual(1, requests.GetProperty("refused").GetInt64());
        Assert.AreEqual(0, requests.GetProperty("cancelled").GetInt64());
        Assert.AreEqual(0, requests.GetProperty("generating").GetInt32());
        Assert.AreEqual(0, requests.GetProperty("waiting").GetInt32());
        Assert.IsGreaterThan(0, generated);
        Assert.AreEqual(generated, after.GetProperty("tokens").GetProperty("generated").GetInt64(), "the count is the usage the replies reported");
        var ttft = after.GetProperty("ttft_ms");
        Assert.AreEqual(2, ttft.GetProperty("count").GetInt32());
        double p50 = ttft.GetProperty("p50").GetDouble();
        Assert.IsTrue(p50 > 0 && p50 <= ttft.GetProperty("p90").GetDouble() && ttft.GetProperty("p90").GetDouble() <= ttft.GetProperty("p99").GetDouble(),
            after.ToString());

        // The rate counts whole quarter-seconds only: the tokens just made show in it within a quarter of a second.
        double rate = 0;
        for (int i = 0; i < 20 && rate == 0; i++)
        {
            await Task.Delay(100, Cancel);
            rate = (await StatsAsync(http)).GetProperty("tokens").GetProperty("per_second").GetDouble();
        }

        Assert.IsGreaterThan(0.0, rate, "tokens just generated show in the rate");
        Assert.IsLessThanOrEqualTo(generated / ServerStats.RateWindow.TotalSeconds, rate);
    }

    [TestMethod]
    public async Task StatsCountAClientThatGoesAwayAsStopped()
    {
        await using var server = await StartAsync(new ServerOptions());
        using var http = Client(server);
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions"))
        {
            request.Content = new StringContent("""{"model":"shakespeare-char","messages":[{"role":"user","content":"Speak."}],"max_tokens":100,"stream":true}""", Encoding.UTF8, "application/json");
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Cancel);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Cancel));
            await reader.ReadLineAsync(Cancel);   // the first event, then the client goes away
        }

        JsonElement requests = default;
        for (int i = 0; i < 50; i++)
        {
            requests = (await StatsAsync(http)).GetProperty("requests");
            if (requests.GetProperty("cancelled").GetInt64() + requests.GetProperty("completed").GetInt64() > 0)
            {
                break;
            }

            await Task.Delay(50, Cancel);
        }

        // The model may finish its 100 tokens before the server notices: either way the request is counted once.
        Assert.AreEqual(1, requests.GetProperty("cancelled").GetInt64() + requests.GetProperty("completed").GetInt64(), requests.ToString());
        Assert.AreEqual(0, requests.GetProperty("generating").GetInt32());
    }

    [TestMethod]
    public void PercentilesAreNearestRank()
    {
        double[] values = [.. Enumerable.Range(1, 100).Select(i => (double)i)];
        Assert.AreEqual(50.0, ServerStats.Percentile(values, 50));
        Assert.AreEqual(90.0, ServerStats.Percentile(values, 90));
        Assert.AreEqual(99.0, ServerStats.Percentile(values, 99));
        Assert.AreEqual(7.0, ServerStats.Percentile([7.0], 99));
        Assert.AreEqual(2.0, ServerStats.Percentile([1.0, 2.0, 3.0], 50));
        Assert.IsNull(ServerStats.Percentile([], 50));
    }

    [TestMethod]
    public async Task BrowserRequestsFromOtherOriginsAreRefusedByDefault()
    {
        await using var server = await StartAsync(new ServerOptions());
        using var http = Client(server);
        using (var foreign = await SendAsync(http, HttpMethod.Post, "/v1/chat/completions", "http://evil.example", ChatBody))
        {
            Assert.AreEqual(HttpStatusCode.Forbidden, foreign.StatusCode);
            string body = await foreign.Content.ReadAsStringAsync(Cancel);
            StringAssert.Contains(body, "cross_origin_refused");
            StringAssert.Contains(body, "--cors-origin http://evil.example");
            Assert.IsFalse(foreign.Headers.Contains("Access-Control-Allow-Origin"));
        }

        using (var preflight = await SendAsync(http, HttpMethod.Options, "/v1/chat/completions", "http://evil.example", null))
        {
            Assert.AreEqual(HttpStatusCode.Forbidden, preflight.StatusCode);
            Assert.IsFalse(preflight.Headers.Contains("Access-Control-Allow-Origin"));
        }

        using (var stats = await SendAsync(http, HttpMethod.Get, "/dashboard/stats", "null", null))
        {
            Assert.AreEqual(HttpStatusCode.Forbidden, stats.StatusCode, "a sandboxed page's origin is not this server's");
        }

        using (var own = await SendAsync(http, HttpMethod.Post, "/v1/chat/completions", server.Urls[0], ChatBody))
        {
            Assert.AreEqual(HttpStatusCode.OK, own.StatusCode, "the server's own pages are served");
        }

        string byName = server.Urls[0].Replace("127.0.0.1", "localhost", StringComparison.Ordinal);
        using (var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models"))
        {
            request.Headers.Host = new Uri(byName).Authority;
            request.Headers.TryAddWithoutValidation("Origin", byName);
            using var response = await http.SendAsync(request, Cancel);
            Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, "the page's origin is the host it was loaded from");
        }

        using var plain = await PostAsync(http, ChatBody);
        Assert.AreEqual(HttpStatusCode.OK, plain.StatusCode, "programs that send no Origin are not affected");
        Assert.IsFalse(plain.Headers.Contains("Access-Control-Allow-Origin"));
    }

    [TestMethod]
    public async Task CorsOriginOpensTheServerToThatOriginOnly()
    {
        await using var server = await StartAsync(new ServerOptions { CorsOrigins = ["http://localhost:3000", "https://Chat.Example.org"] });
        using var http = Client(server);
        using (var allowed = await SendAsync(http, HttpMethod.Post, "/v1/chat/completions", "http://localhost:3000", ChatBody))
        {
            Assert.AreEqual(HttpStatusCode.OK, allowed.StatusCode);
            Assert.AreEqual("http://localhost:3000", allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
            StringAssert.Contains(string.Join(",", allowed.Headers.Vary), "Origin");
        }

        using (var preflight = new HttpRequestMessage(HttpMethod.Options, "/v1/chat/completions"))
        {
            preflight.Headers.TryAddWithoutValidation("Origin", "https://chat.example.org");
            preflight.Headers.TryAddWithoutValidation("Access-Control-Request-Method", "POST");
            preflight.Headers.TryAddWithoutValidation("Access-Control-Request-Headers", "content-type, authorization");
            using var response = await http.SendAsync(preflight, Cancel);
            Assert.AreEqual(HttpStatusCode.NoContent, response.StatusCode, "origins compare without case, as URLs do");
            Assert.AreEqual("https://chat.example.org", response.Headers.GetValues("Access-Control-Allow-Origin").Single());
            StringAssert.Contains(response.Headers.GetValues("Access-Control-Allow-Methods").Single(), "POST");
            Assert.AreEqual("content-type, authorization", response.Headers.GetValues("Access-Control-Allow-Headers").Single());
        }

        using (var other = await SendAsync(http, HttpMethod.Post, "/v1/chat/completions", "http://localhost:3001", ChatBody))
        {
            Assert.AreEqual(HttpStatusCode.Forbidden, other.StatusCode, "another port is another origin");
        }

        await using var open = await StartAsync(new ServerOptions { CorsOrigins = ["*"] });
        using var openHttp = Client(open);
        using var any = await SendAsync(openHttp, HttpMethod.Get, "/v1/models", "http://anywhere.example", null);
        Assert.AreEqual(HttpStatusCode.OK, any.StatusCode);
        Assert.AreEqual("*", any.Headers.GetValues("Access-Control-Allow-Origin").Single());
    }

    [TestMethod]
    [DataRow("http://localhost:3000/")]
    [DataRow("http://localhost:3000/app")]
    [DataRow("localhost:3000")]
    [DataRow("ftp://localhost")]
    [DataRow("http://localhost?x=1")]
    public void AnOriginThatIsNotOneIsRefusedWithTheFormExpected(string origin)
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => new ServerOptions { CorsOrigins = [origin] }.Validate());
        StringAssert.Contains(e.Message, $"'{origin}' is not an origin");
        StringAssert.Contains(e.Message, "scheme://host[:port]");

        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["serve", "--model", ShakespeareFolder, "--no-ui", "--cors-origin", origin], stdout, stderr);
        Assert.AreEqual(2, code, stderr.ToString());
        StringAssert.Contains(stderr.ToString(), "is not an origin");
        Assert.DoesNotContain("unknown option", stderr.ToString(), "--no-ui and --cors-origin are serve's options");
    }

    private const string ChatBody = """{"model":"shakespeare-char","messages":[{"role":"user","content":"Hi."}],"max_tokens":2}""";

    private static async Task<TestServer> StartAsync(ServerOptions options)
    {
        var client = new OnnxGptChatClient(s_model!, new OnnxGptChatClientOptions());
        return new TestServer(await OpenAiServer.StartAsync(client, options with { Urls = "http://127.0.0.1:0" }), client);
    }

    private static HttpClient Client(TestServer server) => new() { BaseAddress = new Uri(server.Urls[0]), Timeout = TimeSpan.FromSeconds(30) };

    private async Task<JsonElement> StatsAsync(HttpClient http)
    {
        using var response = await http.GetAsync("/dashboard/stats", Cancel);
        Assert.AreEqual(HttpStatusCode.OK, response.StatusCode);
        Assert.AreEqual("no-store", response.Headers.CacheControl?.ToString());
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Cancel));
        return json.RootElement.Clone();
    }

    private async Task<HttpResponseMessage> PostAsync(HttpClient http, string body) =>
        await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"), Cancel);

    private async Task<HttpResponseMessage> SendAsync(HttpClient http, HttpMethod method, string path, string origin, string? body)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.TryAddWithoutValidation("Origin", origin);
        if (method == HttpMethod.Options)
        {
            request.Headers.TryAddWithoutValidation("Access-Control-Request-Method", "POST");
        }

        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "text/plain");   // a "simple" request: no preflight
        }

        return await http.SendAsync(request, Cancel);
    }

    /// <summary>A server with the chat client it serves (which the server does not own).</summary>
    private sealed class TestServer(OpenAiServer server, OnnxGptChatClient client) : IAsyncDisposable
    {
        public IReadOnlyList<string> Urls => server.Urls;

        public async ValueTask DisposeAsync()
        {
            await server.DisposeAsync();
            client.Dispose();
        }
    }

    [GeneratedRegex(@"<script(?![^>]*\ssrc=)", RegexOptions.IgnoreCase)]
    private static partial Regex InlineScript();

    [GeneratedRegex("(?:src|href)=\"([^\"]+)\"")]
    private static partial Regex Reference();
}

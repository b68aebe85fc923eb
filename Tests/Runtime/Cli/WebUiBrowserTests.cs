using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Cli.Serving;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;
using OpenQA.Selenium;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary>
/// The chat page and the dashboard in a real headless Chromium, against servers on loopback: the shipped
/// Shakespeare model for replies and load, and <see cref="CyclingModel"/> (which writes <c>&lt;script&gt;</c> over
/// and over, and would go on for thousands of tokens) for markup and the stop button. Inconclusive, with the
/// reason, where Chromium or chromedriver is not installed (failed where <c>ONNXGPT_BROWSER_TESTS=required</c>, as in CI).
/// </summary>
[TestClass]
[DoNotParallelize]
[TestCategory("Browser")]
public sealed partial class WebUiBrowserTests
{
    private const string Shakespeare = "shakespeare-char";
    private const string Cycling = "cycling";
    private const int LongReply = 4000;

    /// <summary>Prompts for the load (the Shakespeare model knows letters and a little punctuation, no digits).</summary>
    private static readonly string[] Names = ["Romeo", "Juliet", "Hamlet", "Lear", "Rosalind", "Falstaff", "Portia"];

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private static string? s_missing;
    private static TempFolder? s_tmp;
    private static readonly List<IDisposable> s_owned = [];
    private static OpenAiServer? s_shakespeare;
    private static OpenAiServer? s_cycling;
    private static StringWriter? s_cyclingLog;
    private static HeadlessChromium? s_browser;
    private static HttpClient? s_http;

    public TestContext TestContext { get; set; } = null!;

    private static HeadlessChromium Browser => s_browser ?? (HeadlessChromium.Required
        ? throw new AssertFailedException($"ONNXGPT_BROWSER_TESTS=required, but {s_missing}")
        : throw new AssertInconclusiveException(s_missing ?? "the browser did not start"));

    private static IWebDriver Page => Browser.Driver;

    private CancellationToken Cancel => TestContext.CancellationToken;

    [ClassInitialize]
    public static async Task Initialize(TestContext context)
    {
        s_missing = HeadlessChromium.MissingReason();
        if (s_missing is not null)
        {
            return;
        }

        s_tmp = new TempFolder();
        s_http = new HttpClient { Timeout = Patience };
        s_shakespeare = await ServeAsync(Path.Combine(TestPaths.RepoRoot, "models", Shakespeare), Shakespeare, new ServerOptions(), null);
        s_cyclingLog = new StringWriter();
        s_cycling = await ServeAsync(CyclingModel.Export(s_tmp, contextLength: LongReply + 64), Cycling,
            new ServerOptions { MaxTokensLimit = LongReply }, s_cyclingLog);
        s_browser = HeadlessChromium.Start();
    }

    [ClassCleanup]
    public static async Task Cleanup()
    {
        s_browser?.Dispose();
        foreach (var server in new[] { s_shakespeare, s_cycling })
        {
            if (server is not null)
            {
                await server.DisposeAsync();
            }
        }

        s_owned.Reverse();
        s_owned.ForEach(o => o.Dispose());
        s_http?.Dispose();
        s_tmp?.Dispose();
    }

    [TestMethod]
    public async Task AReplyTypedInThePageIsTheApisReplyWithTheSameSeedTurnAfterTurn()
    {
        OpenChat(s_shakespeare!, temperature: "0.8", topP: "0.9", maxTokens: "24", seed: "42");
        var sent = new JsonArray();
        foreach (string message in new[] { "Who art thou?", "Speak again." })
        {
            var reply = Send(message);
            Assert.AreEqual("done", reply.GetDomAttribute("data-state"), MetaOf(reply));
            sent.Add(new JsonObject { ["role"] = "user", ["content"] = message });
            var expected = await CompleteAsync(s_shakespeare!, Shakespeare, sent, temperature: 0.8, topP: 0.9, maxTokens: 24, seed: 42);
            string shown = TextOf(reply);
            Assert.AreEqual(expected.Text, shown, $"the page's reply to '{message}' is the API's");
            Assert.IsGreaterThan(0, shown.Length);
            sent.Add(new JsonObject { ["role"] = "assistant", ["content"] = shown });

            Assert.AreEqual(expected.Tokens.ToString(CultureInfo.InvariantCulture), reply.GetDomAttribute("data-tokens"));
            double ttft = double.Parse(reply.GetDomAttribute("data-ttft-ms") ?? "NaN", CultureInfo.InvariantCulture);
            double rate = double.Parse(reply.GetDomAttribute("data-tokens-per-second") ?? "NaN", CultureInfo.InvariantCulture);
            Assert.IsTrue(ttft > 0 && ttft < Patience.TotalMilliseconds, $"time to first token {ttft} ms");
            Assert.IsGreaterThan(0.0, rate);
            StringAssert.Matches(MetaOf(reply), FiguresLine(), "the reply shows its tokens, time to first token and tokens/s");
        }

        Assert.HasCount(4, Page.FindElements(By.CssSelector("#messages .message")), "both turns stay in the page");
        Screenshot("webui-chat.png");
        AssertNoConsoleErrors();
    }

    [TestMethod]
    public void ModelOutputWithMarkupIsShownAsText()
    {
        OpenChat(s_cycling!, maxTokens: "16");
        string prompt = "<img src=x onerror=\"document.title='injected'\"> Write some markup.";
        var reply = Send(prompt);
        Assert.AreEqual("done", reply.GetDomAttribute("data-state"), MetaOf(reply));
        Assert.AreEqual("<script><script>", TextOf(reply), "the model's markup is the reply's text");
        Assert.AreEqual(0L, Script<long>("return arguments[0].querySelector('.text').childElementCount", reply), "and makes no elements");
        Assert.AreEqual(0L, Script<long>("return document.querySelectorAll('#messages script, #messages img').length"), "no script or image in the conversation");

        var user = Page.FindElement(By.CssSelector("#messages .message.user"));
        Assert.AreEqual(prompt, TextOf(user), "the user's markup is shown as text too");
        Assert.AreEqual("OnnxGpt · chat", Page.Title, "no handler ran");
        AssertNoConsoleErrors();
    }

    [TestMethod]
    public void TheBrowserEnforcesThePagesPolicy()
    {
        OpenChat(s_shakespeare!);
        Browser.ConsoleErrors();   // start from a clean log
        Assert.AreEqual("TypeError", Script<string>("try { document.getElementById('messages').innerHTML = '<b>x</b>'; return 'assigned'; } catch (e) { return e.name; }"),
            "Trusted Types: no string reaches an HTML sink");
        Script<object?>("try { const s = document.createElement('script'); s.textContent = 'window.inlineRan = true'; document.body.append(s); } catch { } return null;");
        Assert.IsFalse(Script<bool>("return window.inlineRan === true"), "no inline script runs");
        string elsewhere = s_cycling!.Urls[0] + "/v1/models";
        var fetched = (string?)((IJavaScriptExecutor)Page).ExecuteAsyncScript(
            "const done = arguments[arguments.length - 1]; fetch(arguments[0]).then(() => done('fetched'), (e) => done(e.name));", elsewhere);
        Assert.AreEqual("TypeError", fetched, "no connection to another origin");
        var errors = Browser.ConsoleErrors();
        Assert.IsTrue(errors.Any(e => e.Contains("connect-src", StringComparison.Ordinal) && e.Contains(elsewhere, StringComparison.Ordinal)),
            "the connection was refused by the policy, not only by CORS: " + string.Join("; ", errors));
        Assert.IsTrue(errors.Any(e => e.Contains("TrustedHTML", StringComparison.Ordinal)), string.Join("; ", errors));
    }

    [TestMethod]
    public async Task TheStopButtonEndsTheGenerationOnTheServer()
    {
        OpenChat(s_cycling!, maxTokens: LongReply.ToString(CultureInfo.InvariantCulture));
        var before = await StatsAsync(s_cycling!);
        Page.FindElement(By.Id("prompt")).SendKeys("Go on and on.");
        Page.FindElement(By.Id("send")).Click();
        var reply = Browser.WaitFor(d => d.FindElement(By.CssSelector("#messages .message.assistant")), Patience, "the reply");
        Browser.WaitFor(_ => TextOf(reply).Length >= 24, Patience, "the reply to stream");
        var clock = Stopwatch.StartNew();
        Page.FindElement(By.Id("stop")).Click();
        Browser.WaitFor(_ => reply.GetDomAttribute("data-state") is not (null or "streaming"), Patience, "the page to show the reply ended");
        Assert.AreEqual("stopped", reply.GetDomAttribute("data-state"), $"{MetaOf(reply)} ({TextOf(reply).Length} characters, {clock.ElapsedMilliseconds} ms after the click)");

        JsonElement stats;
        do
        {
            stats = await StatsAsync(s_cycling!);
            Assert.IsLessThan(10.0, clock.Elapsed.TotalSeconds, $"the server still generates 10 s after stop: {stats}");
        }
        while (stats.GetProperty("requests").GetProperty("generating").GetInt32() > 0);
        double stoppedAfter = clock.Elapsed.TotalMilliseconds;

        long generated = stats.GetProperty("tokens").GetProperty("generated").GetInt64() - before.GetProperty("tokens").GetProperty("generated").GetInt64();
        await Task.Delay(500, Cancel);
        var later = await StatsAsync(s_cycling!);
        Assert.AreEqual(stats.GetProperty("tokens").GetProperty("generated").GetInt64(), later.GetProperty("tokens").GetProperty("generated").GetInt64(),
            "no token is generated after the stop");
        Assert.AreEqual(1, later.GetProperty("requests").GetProperty("cancelled").GetInt64() - before.GetProperty("requests").GetProperty("cancelled").GetInt64(),
            "the request counts as stopped");
        Assert.AreEqual(0, later.GetProperty("requests").GetProperty("completed").GetInt64() - before.GetProperty("requests").GetProperty("completed").GetInt64());
        Assert.IsLessThan(LongReply, (int)generated, $"the reply was cut short ({generated} of {LongReply} tokens)");
        StringAssert.Contains(s_cyclingLog!.ToString(), "the client went away", "the server's log says it stopped");
        StringAssert.Matches(MetaOf(reply), StoppedLine());
        Assert.IsTrue(Page.FindElement(By.Id("send")).Enabled, "the page takes the next message");
        TestContext.WriteLine($"stopped on the server {stoppedAfter:F0} ms after the click, after {generated} of {LongReply} tokens");
    }

    [TestMethod]
    public async Task DashboardNumbersMoveWhileALoadGeneratorRuns()
    {
        Page.Navigate().GoToUrl(s_shakespeare!.Urls[0] + "/dashboard");
        Browser.WaitFor(d => d.FindElement(By.Id("model")).Text == Shakespeare, Patience, "the first figures");
        long requestsBefore = long.Parse(Tile("requests"), NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
        int samplesBefore = ChartSamples("chart-tps");

        // Three clients asking one after another; for the README's screenshot, longer and joining one by one.
        bool forPicture = ScreenshotFolder is not null;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(forPicture ? 50 : 3));
        int completed = 0;
        var load = Enumerable.Range(0, 3).Select(worker => Task.Run(async () =>
        {
            await Task.Delay(TimeSpan.FromSeconds(forPicture ? 12 * worker : 0), Cancel);
            for (int i = 0; !stop.IsCancellationRequested; i++)
            {
                var messages = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = $"Tell me a tale of {Names[(worker + i) % Names.Length]}." });
                await CompleteAsync(s_shakespeare, Shakespeare, messages, temperature: 1.0, topP: 1.0, maxTokens: 48, seed: worker * 1000 + i);
                Interlocked.Increment(ref completed);
            }
        }, Cancel)).ToArray();

        double maxRate = 0;
        int maxActive = 0;
        while (!stop.IsCancellationRequested)
        {
            maxRate = Math.Max(maxRate, double.Parse(Tile("tps"), CultureInfo.InvariantCulture));
            maxActive = Math.Max(maxActive, int.Parse(Tile("generating"), CultureInfo.InvariantCulture));
            await Task.Delay(100, Cancel);
        }

        Screenshot("webui-dashboard.png");
        await Task.WhenAll(load);
        Assert.IsGreaterThan(0.0, maxRate, "tokens/s rose under load");
        Assert.IsGreaterThanOrEqualTo(1, maxActive, "active sequences rose under load");
        Browser.WaitFor(_ => long.Parse(Tile("requests"), NumberStyles.AllowThousands, CultureInfo.InvariantCulture) >= requestsBefore + completed, Patience,
            $"the request count to take in the {completed} requests of the load");
        StringAssert.Matches(Tile("ttft-p50"), TtftTile(), "time to first token has a figure");
        StringAssert.Matches(Page.FindElement(By.Id("ttft-tail")).Text, TtftTail());
        Assert.IsGreaterThanOrEqualTo(samplesBefore + 3, ChartSamples("chart-tps"), "the charts took a point a second");
        foreach (string chart in new[] { "chart-sequences", "chart-ttft", "chart-memory" })
        {
            Assert.IsLessThanOrEqualTo(1, Math.Abs(ChartSamples("chart-tps") - ChartSamples(chart)), $"{chart} has as many points as the tokens/s chart");
        }

        StringAssert.Matches(Tile("memory"), MemoryTile());
        Browser.WaitFor(_ => Tile("generating") == "0" && Tile("tps") == "0.0", Patience, "the figures to fall back when the load ends");
        AssertNoConsoleErrors();
    }

    private static async Task<OpenAiServer> ServeAsync(string folder, string id, ServerOptions options, TextWriter? log)
    {
        var model = GptModel.Load(folder);
        s_owned.Add(model);
        var client = new OnnxGptChatClient(model, new OnnxGptChatClientOptions { ModelId = id });
        s_owned.Add(client);
        return await OpenAiServer.StartAsync(client, options with { Urls = "http://127.0.0.1:0" }, log);
    }

    /// <summary>Opens the chat page and sets the sampling controls (blank ones keep the page's defaults).</summary>
    private static void OpenChat(OpenAiServer server, string? temperature = null, string? topP = null, string? maxTokens = null, string? seed = null)
    {
        Page.Navigate().GoToUrl(server.Urls[0] + "/");
        Browser.WaitFor(d => d.FindElement(By.Id("model")).Text is { Length: > 0 } text && text != "…", Patience, "the model's id");
        foreach (var (id, value) in new[] { ("temperature", temperature), ("top-p", topP), ("max-tokens", maxTokens), ("seed", seed) })
        {
            if (value is not null)
            {
                var input = Page.FindElement(By.Id(id));
                input.Clear();
                input.SendKeys(value);
            }
        }
    }

    /// <summary>Types a message, sends it with Enter, and waits for the reply to end; returns the reply.</summary>
    private static IWebElement Send(string message)
    {
        int before = Page.FindElements(By.CssSelector("#messages .message.assistant")).Count;
        Page.FindElement(By.Id("prompt")).SendKeys(message + Keys.Enter);
        var reply = Browser.WaitFor(d => d.FindElements(By.CssSelector("#messages .message.assistant")).Skip(before).FirstOrDefault(), Patience, "the reply")!;
        Browser.WaitFor(_ => reply.GetDomAttribute("data-state") is not (null or "streaming"), Patience, "the reply to end");
        return reply;
    }

    private static string TextOf(IWebElement message) => Script<string>("return arguments[0].querySelector('.text').textContent", message);

    private static string MetaOf(IWebElement message) => Script<string>("return arguments[0].querySelector('.meta').textContent", message);

    private static string Tile(string id) => Page.FindElement(By.Id(id)).Text;

    private static int ChartSamples(string id) => int.Parse(Page.FindElement(By.Id(id)).GetDomAttribute("data-samples") ?? "0", CultureInfo.InvariantCulture);

    private static T Script<T>(string script, params object[] args) => (T)((IJavaScriptExecutor)Page).ExecuteScript(script, args)!;

    private static void AssertNoConsoleErrors()
    {
        var errors = Browser.ConsoleErrors();
        Assert.IsEmpty(errors, "the page logged errors (a Content-Security-Policy violation shows here): " + string.Join("; ", errors));
    }

    /// <summary>
    /// Where the tests save screenshots of the pages, or null: <c>ONNXGPT_SCREENSHOTS=docs</c> remakes the README's
    /// (a relative folder is the repository's; the dashboard's load then runs for 50 s, so its charts have a history).
    /// </summary>
    private static string? ScreenshotFolder => Environment.GetEnvironmentVariable("ONNXGPT_SCREENSHOTS") is { Length: > 0 } folder
        ? Path.GetFullPath(folder, TestPaths.RepoRoot)
        : null;

    private static void Screenshot(string name)
    {
        if (ScreenshotFolder is { } folder)
        {
            Directory.CreateDirectory(folder);
            ((ITakesScreenshot)Page).GetScreenshot().SaveAsFile(Path.Combine(folder, name));
        }
    }

    private async Task<JsonElement> StatsAsync(OpenAiServer server)
    {
        using var json = JsonDocument.Parse(await s_http!.GetStringAsync(server.Urls[0] + "/dashboard/stats", Cancel));
        return json.RootElement.Clone();
    }

    private static async Task<(string Text, int Tokens)> CompleteAsync(OpenAiServer server, string model, JsonArray messages,
        double temperature, double topP, int maxTokens, int seed)
    {
        var body = new JsonObject
        {
            ["model"] = model, ["messages"] = messages.DeepClone(), ["temperature"] = temperature, ["top_p"] = topP,
            ["max_tokens"] = maxTokens, ["seed"] = seed,
        };
        using var response = await s_http!.PostAsync(server.Urls[0] + "/v1/chat/completions",
            new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        var answer = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.IsTrue(response.IsSuccessStatusCode, answer.ToString());
        return (answer.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!,
            answer.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [GeneratedRegex(@"^\d+ tokens? · first after \d+ ms · then [\d.]+ tokens/s · (finished|max tokens reached)$")]
    private static partial Regex FiguresLine();

    [GeneratedRegex(@"^\d+ tokens · first after \d+ ms · then [\d.]+ tokens/s · stopped$")]
    private static partial Regex StoppedLine();

    [GeneratedRegex(@"^\d+ ms$|^\d+\.\d\d s$")]
    private static partial Regex TtftTile();

    [GeneratedRegex(@"^p90 .+ · p99 .+ · \d+ requests$")]
    private static partial Regex TtftTail();

    [GeneratedRegex(@"^\d+ MiB$")]
    private static partial Regex MemoryTile();
}

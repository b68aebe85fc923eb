using System.ClientModel;
using System.Net.Sockets;
using System.Net;
using System.Text.Json;
using System.Text;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;
using Microsoft.Extensions.AI;
using OaiChatMessage = OpenAI.Chat.ChatMessage;
using OnnxGpt.Cli.Serving;
using OnnxGpt.Cli;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;
using OpenAI.Chat;
using OpenAI.Models;
using OpenAI;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary>
/// The OpenAI-compatible server on loopback (a free port), driven by the official OpenAI .NET client and by raw
/// HTTP: answers equal the in-process chat client's, streams end with [DONE], bad requests get 4xx in OpenAI's
/// error shape and leave the server serving.
/// </summary>
[TestClass]
public sealed class OpenAiServerTests
{
    private const string ModelId = "tiny";
    private const int BodyLimit = 32 * 1024;
    private const int TokensLimit = 48;

    private static TempFolder? s_tmp;
    private static GptModel? s_model;
    private static OnnxGptChatClient? s_served;
    private static OnnxGptChatClient? s_local;
    private static OpenAiServer? s_server;
    private static HttpClient? s_http;
    private static StringWriter? s_log;

    public TestContext TestContext { get; set; } = null!;

    private static string BaseUrl => s_server!.Urls[0];

    private static HttpClient Http => s_http!;

    private CancellationToken Cancel => TestContext.CancellationToken;

    [ClassInitialize]
    public static async Task Initialize(TestContext context)
    {
        s_tmp = new TempFolder();
        s_model = GptModel.Load(ChatModels.ExportTinyGpt2(s_tmp));
        s_served = new OnnxGptChatClient(s_model, new OnnxGptChatClientOptions { ModelId = ModelId });
        s_local = new OnnxGptChatClient(s_model, new OnnxGptChatClientOptions { MaxCachedConversations = 0 });
        s_log = new StringWriter();
        s_server = await OpenAiServer.StartAsync(s_served, new ServerOptions
        {
            Urls = "http://127.0.0.1:0",
            MaxRequestBodyBytes = BodyLimit,
            MaxTokensLimit = TokensLimit,
            MaxConcurrentRequests = 2,
        }, s_log, cancellationToken: context.CancellationToken);
        s_http = new HttpClient { BaseAddress = new Uri(BaseUrl), Timeout = TimeSpan.FromSeconds(30) };
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
        s_local?.Dispose();
        s_model?.Dispose();
        s_tmp?.Dispose();
    }

    private static ChatClient OpenAiChat(string model = ModelId) =>
        new(model, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(BaseUrl + "/v1"), NetworkTimeout = TimeSpan.FromSeconds(30) });

    [TestMethod]
    public void ServerListensOnTheLoopbackPortItWasGiven()
    {
        var uri = new Uri(BaseUrl);
        Assert.AreEqual("127.0.0.1", uri.Host);
        Assert.AreNotEqual(0, uri.Port, "port 0 is replaced by the port actually bound");
    }

    [TestMethod]
    public async Task ChatCompletionFromTheOpenAiClientEqualsTheInProcessReply()
    {
        OaiChatMessage[] messages = [new SystemChatMessage("You are terse."), new UserChatMessage("Hello, who are you?")];
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 10, Temperature = 0 };
        ChatCompletion completion = (await OpenAiChat().CompleteChatAsync(messages, options, Cancel)).Value;

        var expected = await s_local!.GetResponseAsync(
            [new AiChatMessage(ChatRole.System, "You are terse."), new AiChatMessage(ChatRole.User, "Hello, who are you?")],
            new ChatOptions { MaxOutputTokens = 10, Temperature = 0 }, Cancel);
        Assert.AreEqual(expected.Text, completion.Content.Single().Text);
        Assert.AreEqual(ChatMessageRole.Assistant, completion.Role);
        Assert.AreEqual(OpenAI.Chat.ChatFinishReason.Length, completion.FinishReason);
        Assert.AreEqual(expected.Usage!.InputTokenCount, completion.Usage.InputTokenCount);
        Assert.AreEqual(10, completion.Usage.OutputTokenCount);
        Assert.AreEqual(ModelId, completion.Model);
        StringAssert.StartsWith(completion.Id, "chatcmpl-");
    }

    [TestMethod]
    public async Task StreamingChatFromTheOpenAiClientMakesTheSameTextAndReportsUsage()
    {
        OaiChatMessage[] messages = [new UserChatMessage("Tell me about the streams of the forest.")];
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 12, Temperature = 0 };
        var whole = (await OpenAiChat().CompleteChatAsync(messages, options, Cancel)).Value;

        var text = new StringBuilder();
        int updates = 0;
        OpenAI.Chat.ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        await foreach (var update in OpenAiChat().CompleteChatStreamingAsync(messages, options, Cancel))
        {
            updates++;
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }

        Assert.IsGreaterThan(3, updates);
        Assert.AreEqual(whole.Content.Single().Text, text.ToString());
        Assert.AreEqual(OpenAI.Chat.ChatFinishReason.Length, finish);
        Assert.IsNotNull(usage, "the client asks for usage in the stream");
        Assert.AreEqual(12, usage.OutputTokenCount);
        Assert.IsGreaterThan(0, usage.InputTokenDetails!.CachedTokenCount, "the same conversation again reuses the cache");
    }

    [TestMethod]
    public async Task ModelsAreListedAndAnUnknownModelIsNotFound()
    {
        var models = new OpenAIModelClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(BaseUrl + "/v1") });
        var list = (await models.GetModelsAsync(Cancel)).Value;
        Assert.AreEqual(ModelId, list.Single().Id);
        Assert.AreEqual("onnxgpt", list.Single().OwnedBy);
        Assert.AreEqual(ModelId, (await models.GetModelAsync(ModelId, Cancel)).Value.Id);

        var e = await Assert.ThrowsExactlyAsync<ClientResultException>(() => OpenAiChat("gpt-4o").CompleteChatAsync([new UserChatMessage("hi")], cancellationToken: Cancel));
        Assert.AreEqual(404, e.Status);
        StringAssert.Contains(e.Message, "model_not_found");
    }

    [TestMethod]
    public async Task TextCompletionAnswersPlainAndStreamedWithDone()
    {
        string body = """{"model":"tiny","prompt":"Once upon a time","max_tokens":6,"temperature":0,"echo":true}""";
        using var plain = await PostAsync("/v1/completions", body);
        Assert.AreEqual(HttpStatusCode.OK, plain.StatusCode);
        using var json = JsonDocument.Parse(await plain.Content.ReadAsStringAsync(Cancel));
        var choice = json.RootElement.GetProperty("choices")[0];
        Assert.AreEqual("text_completion", json.RootElement.GetProperty("object").GetString());
        string text = choice.GetProperty("text").GetString()!;
        StringAssert.StartsWith(text, "Once upon a time", "echo puts the prompt first");
        Assert.AreEqual("length", choice.GetProperty("finish_reason").GetString());
        Assert.AreEqual(6, json.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        var expected = await s_local!.CompleteStreamingAsync("Once upon a time", new ChatOptions { MaxOutputTokens = 6, Temperature = 0 }, Cancel).ToChatResponseAsync(Cancel);
        Assert.AreEqual("Once upon a time" + expected.Text, text, "no template and no trimming for completions");

        using var streamed = await PostAsync("/v1/completions", body.Replace("\"echo\":true", "\"stream\":true", StringComparison.Ordinal));
        Assert.AreEqual("text/event-stream", streamed.Content.Headers.ContentType!.MediaType);
        var events = await ReadEventsAsync(streamed);
        Assert.AreEqual("[DONE]", events[^1]);
        var chunks = events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.AreEqual(expected.Text, string.Concat(chunks.Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString())));
        Assert.AreEqual("length", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [TestMethod]
    [DataRow("{\"model\":\"tiny\",\"messages\":[", 400, null, "invalid_json", DisplayName = "malformed JSON")]
    [DataRow("[1,2]", 400, null, null, DisplayName = "not an object")]
    [DataRow("{\"model\":\"nope\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 404, "model", "model_not_found", DisplayName = "unknown model")]
    [DataRow("{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":-5}", 400, "max_tokens", "invalid_value", DisplayName = "negative max_tokens")]
    [DataRow("{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":49}", 400, "max_tokens", "invalid_value", DisplayName = "max_tokens over the limit")]
    [DataRow("{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":\"hot\"}", 400, "temperature", null, DisplayName = "temperature not a number")]
    [DataRow("{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_p\":0}", 400, "top_p", "invalid_value", DisplayName = "top_p zero")]
    [DataRow("{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"n\":17}", 400, "n", "invalid_value", DisplayName = "too many choices")]
    [DataRow("{\"model\":\"tiny\",\"messages\":[]}", 400, "messages", null, DisplayName = "no messages")]
    [DataRow("{\"model\":\"tiny\",\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}", 400, "messages[0].role", "invalid_value", DisplayName = "unknown role")]
    [DataRow("{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", 400, "messages[0].content[0]", "unsupported_content", DisplayName = "image part")]
    [DataRow("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 400, "model", null, DisplayName = "no model")]
    public async Task BadChatRequestsGetAnOpenAiErrorAndTheServerKeepsServing(string body, int status, string? param, string? code)
    {
        using var response = await PostAsync("/v1/chat/completions", body);
        await AssertErrorAsync(response, status, param, code);
        await AssertStillServingAsync();
    }

    [TestMethod]
    public async Task RequestWithoutMaxTokensGetsTheModelsDefaultWithinTheLimit()
    {
        Assert.AreEqual(64, s_model!.GenerationDefaults.MaxNewTokens, "the model's default is above the server's limit");
        using var response = await PostAsync("/v1/completions", """{"model":"tiny","prompt":"The end","temperature":0}""");
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Cancel));
        int generated = json.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        string finish = json.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString()!;
        Assert.IsTrue(finish == "length" ? generated == TokensLimit : generated < TokensLimit, $"{generated} tokens, finish {finish}");
    }

    [TestMethod]
    public async Task OversizedBodyIs413AndTheServerKeepsServing()
    {
        string big = "{\"model\":\"tiny\",\"prompt\":\"" + new string('a', BodyLimit + 1000) + "\"}";
        using var response = await PostAsync("/v1/completions", big);
        var error = await AssertErrorAsync(response, 413, null, "request_too_large");
        Assert.IsTrue(response.Headers.ConnectionClose, "the connection is not reused after an unread body");
        StringAssert.Contains(error, BodyLimit.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await AssertStillServingAsync();
    }

    [TestMethod]
    public async Task PromptLongerThanTheContextAndWrongMethodsAreRefused()
    {
        string tooLong = "{\"model\":\"tiny\",\"prompt\":\"" + string.Concat(Enumerable.Repeat("many words here ", 300)) + "\"}";
        using (var response = await PostAsync("/v1/completions", tooLong))
        {
            StringAssert.Contains(await AssertErrorAsync(response, 400, "prompt", null), "context is 512 tokens");
        }

        using (var response = await Http.GetAsync("/v1/chat/completions", Cancel))
        {
            await AssertErrorAsync(response, 405, null, "method_not_allowed");
        }

        using (var response = await Http.GetAsync("/v2/engines", Cancel))
        {
            await AssertErrorAsync(response, 404, null, "unknown_url");
        }

        await AssertStillServingAsync();
    }

    [TestMethod]
    public async Task ConcurrentRequestsAreServedCorrectly()
    {
        const int Requests = 6;
        var expected = new string[Requests];
        for (int i = 0; i < Requests; i++)
        {
            expected[i] = (await s_local!.GetResponseAsync([new AiChatMessage(ChatRole.User, Prompt(i))], new ChatOptions { MaxOutputTokens = 8, Temperature = 0 }, Cancel)).Text;
        }

        var answers = await Task.WhenAll(Enumerable.Range(0, Requests).Select(async i =>
        {
            var completion = await OpenAiChat().CompleteChatAsync([new UserChatMessage(Prompt(i))], new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0 }, Cancel);
            return completion.Value.Content.Single().Text;
        }));
        CollectionAssert.AreEqual(expected, answers);

        static string Prompt(int i) => $"Request {i} asks about the number {i * 13}.";
    }

    [TestMethod]
    public async Task ClientThatGoesAwayMidStreamLeavesTheServerServing()
    {
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions"))
        {
            request.Content = new StringContent("""{"model":"tiny","messages":[{"role":"user","content":"Go on and on."}],"max_tokens":40,"stream":true}""", Encoding.UTF8, "application/json");
            using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Cancel);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Cancel));
            StringAssert.StartsWith(await reader.ReadLineAsync(Cancel), "data: {");
        }

        await AssertStillServingAsync();
    }

    [TestMethod]
    public async Task GateLetsTheAllowedNumberRunQueuesTheNextAndRefusesBeyond()
    {
        var gate = new RequestGate(parallel: 1, queue: 1);
        var first = await gate.EnterAsync(Cancel);
        var second = gate.EnterAsync(Cancel);
        Assert.IsFalse(second.IsCompleted, "the second request waits for the first");
        var e = await Assert.ThrowsExactlyAsync<OpenAiError>(() => gate.EnterAsync(Cancel));
        Assert.AreEqual(503, e.Status);
        first.Dispose();
        (await second.WaitAsync(TimeSpan.FromSeconds(5), Cancel)).Dispose();
        Assert.AreEqual(0, gate.Admitted);
    }

    [TestMethod]
    public void ServeRefusesBadOptionsAndAnAddressInUse()
    {
        var (code, _, err) = RunCli("serve", "--model", s_model!.Folder, "--parallel", "0");
        Assert.AreEqual(2, code, err);
        StringAssert.Contains(err, "--parallel must be a whole number >= 1; found 0.");

        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        (code, _, err) = RunCli("serve", "--model", s_model.Folder, "--urls", $"http://127.0.0.1:{port}");
        Assert.AreEqual(1, code, err);
        StringAssert.Contains(err, "cannot listen on");

        (code, var usage, _) = RunCli("serve", "--help");
        Assert.AreEqual(0, code);
        StringAssert.Contains(usage, "/v1/chat/completions");
    }

    private static (int Code, string Out, string Err) RunCli(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private async Task<HttpResponseMessage> PostAsync(string path, string body) =>
        await Http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"), Cancel);

    /// <summary>Checks status and error shape; returns the message.</summary>
    private async Task<string> AssertErrorAsync(HttpResponseMessage response, int status, string? param, string? code)
    {
        string text = await response.Content.ReadAsStringAsync(Cancel);
        Assert.AreEqual(status, (int)response.StatusCode, text);
        Assert.AreEqual("application/json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(text);
        var error = json.RootElement.GetProperty("error");
        string message = error.GetProperty("message").GetString()!;
        Assert.IsGreaterThan(10, message.Length, "the message says what is wrong");
        Assert.AreEqual(status >= 500 ? "server_error" : "invalid_request_error", error.GetProperty("type").GetString());
        Assert.AreEqual(param, error.GetProperty("param").ValueKind == JsonValueKind.Null ? null : error.GetProperty("param").GetString(), text);
        if (code is not null)
        {
            Assert.AreEqual(code, error.GetProperty("code").GetString(), text);
        }

        return message;
    }

    private async Task AssertStillServingAsync()
    {
        var completion = await OpenAiChat().CompleteChatAsync([new UserChatMessage("Still there?")], new ChatCompletionOptions { MaxOutputTokenCount = 2 }, Cancel);
        Assert.AreEqual(2, completion.Value.Usage.OutputTokenCount);
    }

    private async Task<List<string>> ReadEventsAsync(HttpResponseMessage response)
    {
        var events = new List<string>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Cancel));
        while (await reader.ReadLineAsync(Cancel) is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add(line["data: ".Length..]);
            }
            else
            {
                Assert.AreEqual("", line, "events are separated by blank lines");
            }
        }

        return events;
    }
}

using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using Json.Schema;
using OnnxGpt.Cli.Serving;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;
using OpenAI;
using OpenAI.Chat;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary>
/// <c>response_format</c> through the server, driven by the official OpenAI .NET client (2.15.0) and raw HTTP:
/// json_schema replies parse and validate, json_object replies parse, unsupported schemas are a 400 naming the
/// keyword, and a reply cut by max_tokens says "length".
/// </summary>
[TestClass]
public sealed class StructuredOutputServerTests
{
    private const string ModelId = "gpt2-vocab";

    private const string PersonSchema = """
        {"type":"object","properties":{"name":{"type":"string","maxLength":10},"age":{"type":"integer","minimum":0,"maximum":120},
         "pets":{"type":"array","items":{"enum":["cat","dog"]},"maxItems":3}},"required":["name","age","pets"],"additionalProperties":false}
        """;

    private static TempFolder? s_tmp;
    private static GptModel? s_model;
    private static OnnxGptChatClient? s_client;
    private static OpenAiServer? s_server;
    private static HttpClient? s_http;

    public TestContext TestContext { get; set; } = null!;

    private static string BaseUrl => s_server!.Urls[0];

    private CancellationToken Cancel => TestContext.CancellationToken;

    [ClassInitialize]
    public static async Task Initialize(TestContext context)
    {
        s_tmp = new TempFolder();
        s_model = GptModel.Load(ChatModels.ExportGpt2Vocabulary(s_tmp));
        s_client = new OnnxGptChatClient(s_model, new OnnxGptChatClientOptions { ModelId = ModelId });
        s_server = await OpenAiServer.StartAsync(s_client, new ServerOptions { Urls = "http://127.0.0.1:0", MaxTokensLimit = 400 }, new StringWriter(),
            cancellationToken: context.CancellationToken);
        s_http = new HttpClient { BaseAddress = new Uri(BaseUrl), Timeout = TimeSpan.FromSeconds(60) };
    }

    [ClassCleanup]
    public static async Task Cleanup()
    {
        s_http?.Dispose();
        if (s_server is not null)
        {
            await s_server.DisposeAsync();
        }

        s_client?.Dispose();
        s_model?.Dispose();
        s_tmp?.Dispose();
    }

    private static ChatClient OpenAiChat() =>
        new(ModelId, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(BaseUrl + "/v1"), NetworkTimeout = TimeSpan.FromSeconds(60) });

    [TestMethod]
    public async Task JsonSchemaRepliesFromTheOpenAiClientParseAndValidate()
    {
        var validator = JsonSchema.FromText(PersonSchema);
        for (int seed = 0; seed < 4; seed++)
        {
            var options = new ChatCompletionOptions
            {
                ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("person", BinaryData.FromString(PersonSchema), jsonSchemaIsStrict: true),
                MaxOutputTokenCount = 300,
                Temperature = 1.0f,
#pragma warning disable OPENAI001 // Seed is marked experimental in the OpenAI client.
                Seed = seed,
#pragma warning restore OPENAI001
            };
            ChatCompletion completion = (await OpenAiChat().CompleteChatAsync([new UserChatMessage("A person, please.")], options, Cancel)).Value;
            string text = completion.Content[0].Text;
            Assert.AreEqual(ChatFinishReason.Stop, completion.FinishReason, $"seed {seed}: {text}");
            using var document = JsonDocument.Parse(text);
            Assert.IsTrue(validator.Evaluate(document.RootElement).IsValid, $"seed {seed}: {text}");
        }
    }

    [TestMethod]
    public async Task StreamedJsonObjectRepliesParse()
    {
        // Seeded, so every run checks the same replies: each one that finished within its budget parses, and at least
        // one of the seeds finishes (a reply cut off at the limit is a valid prefix, not a whole value).
        int finished = 0;
        for (int seed = 0; seed < 6; seed++)
        {
            var options = new ChatCompletionOptions
            {
                ResponseFormat = ChatResponseFormat.CreateJsonObjectFormat(),
                MaxOutputTokenCount = 120,
#pragma warning disable OPENAI001 // Seed is marked experimental in the OpenAI client.
                Seed = seed,
#pragma warning restore OPENAI001
            };
            var text = new StringBuilder();
            ChatFinishReason? finish = null;
            await foreach (var update in OpenAiChat().CompleteChatStreamingAsync([new UserChatMessage("JSON!")], options, Cancel))
            {
                foreach (var part in update.ContentUpdate)
                {
                    text.Append(part.Text);
                }

                finish ??= update.FinishReason;
            }

            if (finish == ChatFinishReason.Length)
            {
                continue;
            }

            Assert.AreEqual(ChatFinishReason.Stop, finish, $"seed {seed}: {text}");
            using var _ = JsonDocument.Parse(text.ToString());
            finished++;
        }

        Assert.IsGreaterThanOrEqualTo(1, finished, "no seeded reply finished within 120 tokens");
    }

    [TestMethod]
    public async Task AnUnsupportedKeywordIsA400NamingItAndItsPath()
    {
        var body = """{"model":"gpt2-vocab","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"id":{"type":"string","contentEncoding":"base64"}}}}}}""";
        using var response = await s_http!.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"), Cancel);
        Assert.AreEqual(HttpStatusCode.BadRequest, response.StatusCode);
        using var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Cancel));
        string message = error.RootElement.GetProperty("error").GetProperty("message").GetString()!;
        StringAssert.Contains(message, "$.properties.id.contentEncoding");
        Assert.AreEqual("response_format", error.RootElement.GetProperty("error").GetProperty("param").GetString());

        var badType = """{"model":"gpt2-vocab","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"yaml"}}""";
        using var second = await s_http.PostAsync("/v1/chat/completions", new StringContent(badType, Encoding.UTF8, "application/json"), Cancel);
        Assert.AreEqual(HttpStatusCode.BadRequest, second.StatusCode);
        StringAssert.Contains(await second.Content.ReadAsStringAsync(Cancel), "response_format.type");
    }

    [TestMethod]
    public async Task AReplyCutByMaxTokensFinishesForLength()
    {
        var options = new ChatCompletionOptions
        {
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("person", BinaryData.FromString(PersonSchema)),
            MaxOutputTokenCount = 2,
        };
        ChatCompletion completion = (await OpenAiChat().CompleteChatAsync([new UserChatMessage("A person.")], options, Cancel)).Value;
        Assert.AreEqual(ChatFinishReason.Length, completion.FinishReason);
    }
}

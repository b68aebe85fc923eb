using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.AI;
using OnnxGpt.Cli.Serving;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Models;

/// <summary>
/// stories260K through each host at temperature 0: the chat client (a story template: the user's text is the start
/// of the story), and <c>onnxgpt serve</c>'s <c>/v1/completions</c>. Both continue "Once upon a time" as greedy
/// decoding from BOS does.
/// </summary>
[TestClass]
public sealed class Stories260KHostsTests
{
    /// <summary>How the shipped model's chat reads: the user's message is the story so far, the reply its continuation.</summary>
    public static ChatTemplateSpec StoryTemplate { get; } = new()
    {
        SystemMessage = "{content}\n", UserMessage = "{content}", AssistantMessage = "{content}", OtherMessage = "{content}", GenerationPrompt = "", StopSequences = [],
    };

    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public async Task ChatClientContinuesTheStory()
    {
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(ExportWithTemplate(tmp, GraphFlavor.Fused));
        using var chat = new OnnxGptChatClient(model);
        IChatClient client = chat;
        var reply = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")],
            new ChatOptions { Temperature = 0, MaxOutputTokens = 16 }, TestContext.CancellationToken);
        StringAssert.StartsWith("Once upon a time" + reply.Text, Stories260K.GreedyStart, $"reply: '{reply.Text}'");
        Assert.AreEqual(5, reply.Usage!.InputTokenCount, "<s> and the four tokens of the prompt");
    }

    [TestMethod]
    public async Task ServeCompletionsAtTemperatureZeroTellsTheSameStory()
    {
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(ExportWithTemplate(tmp, GraphFlavor.Portable));
        string text = await ServeOnceUponATime(model, TestContext.CancellationToken);
        StringAssert.StartsWith(text, Stories260K.GreedyStart, $"served text: '{text}'");
    }

    /// <summary>
    /// Starts <c>onnxgpt serve</c>'s server on <paramref name="model"/> and returns the text of one
    /// <c>/v1/completions</c> of "Once upon a time" (echoed) at temperature 0, 16 tokens.
    /// </summary>
    public static async Task<string> ServeOnceUponATime(GptModel model, CancellationToken cancellationToken)
    {
        using var chat = new OnnxGptChatClient(model, new OnnxGptChatClientOptions { ModelId = "stories260K" });
        await using var server = await OpenAiServer.StartAsync(chat, new ServerOptions { Urls = "http://127.0.0.1:0" }, TextWriter.Null,
            cancellationToken: cancellationToken);
        using var http = new HttpClient { BaseAddress = new Uri(server.Urls[0]), Timeout = TimeSpan.FromSeconds(30) };
        using var response = await http.PostAsync("/v1/completions",
            new StringContent("""{"model":"stories260K","prompt":"Once upon a time","max_tokens":16,"temperature":0,"echo":true}""",
                System.Text.Encoding.UTF8, "application/json"), cancellationToken);
        string body = await response.Content.ReadAsStringAsync(cancellationToken);
        Assert.IsTrue(response.IsSuccessStatusCode, body);
        using var json = JsonDocument.Parse(body);
        return json.RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!;
    }

    private static string ExportWithTemplate(TempFolder tmp, GraphFlavor flavor) =>
        Stories260KExport.Folder(tmp, "m", new GraphOptions { Flavor = flavor }, chatTemplate: StoryTemplate);
}

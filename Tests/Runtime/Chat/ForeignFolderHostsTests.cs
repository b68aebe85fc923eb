using Microsoft.Extensions.AI;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Models;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Chat;

/// <summary>
/// Folders made by other tools through the hosts, at temperature 0: the chat client (two turns, so the second reuses
/// the first's cache) and <c>onnxgpt serve</c>'s <c>/v1/completions</c> give what they give on our own export of the
/// same weights (stories260K, whose story they continue). Optimum's pair runs its first-step decoder under the chat
/// client; the GenAI llama folder is a fused graph, which the chat client runs on the batch engine.
/// </summary>
[TestClass]
public sealed class ForeignFolderHostsTests
{
    private static readonly ChatTemplate Story = new(Stories260KHostsTests.StoryTemplate);

    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [DataRow("optimum pair")]
    [DataRow("transformers.js merged")]
    [DataRow("genai llama")]
    public async Task ChatClientAndServerGiveWhatOurExportGives(string convention)
    {
        using var tmp = TestPaths.NewTemp();
        string folder = convention switch
        {
            "optimum pair" => ForeignFolders.OptimumPair(tmp, from: ForeignFolders.Stories),
            "transformers.js merged" => ForeignFolders.TransformersJs(tmp, "decoder_model_merged_quantized.onnx", from: ForeignFolders.Stories),
            "genai llama" => ForeignFolders.GenAiLlama(tmp),
            _ => throw new ArgumentOutOfRangeException(nameof(convention), convention, "no such convention in this test"),
        };
        using var ours = GptModel.Load(Stories260KExport.Folder(tmp, "ours", new OnnxGpt.Exporter.Onnx.GraphOptions
        {
            Flavor = convention == "genai llama" ? OnnxGpt.Exporter.Onnx.GraphFlavor.Fused : OnnxGpt.Exporter.Onnx.GraphFlavor.Portable,
        }));
        using var theirs = GptModel.Load(folder);
        Assert.IsFalse(theirs.Metadata.ContainsKey(OnnxGpt.Contracts.MetadataKeys.Config), convention);

        var expected = await Chat(ours);
        var found = await Chat(theirs);
        StringAssert.StartsWith("Once upon a time" + found[0], Stories260K.GreedyStart, $"{convention}: '{found[0]}'");
        CollectionAssert.AreEqual(expected, found, $"{convention}: ours [{string.Join(" | ", expected)}], found [{string.Join(" | ", found)}]");

        string served = await Stories260KHostsTests.ServeOnceUponATime(theirs, TestContext.CancellationToken);
        StringAssert.StartsWith(served, Stories260K.GreedyStart, $"{convention}: served '{served}'");
        Assert.AreEqual(await Stories260KHostsTests.ServeOnceUponATime(ours, TestContext.CancellationToken), served, convention);
    }

    /// <summary>Two turns of one conversation; the replies.</summary>
    private async Task<string[]> Chat(GptModel model)
    {
        using var chat = new OnnxGptChatClient(model, new OnnxGptChatClientOptions { ChatTemplate = Story });
        IChatClient client = chat;
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 16 };
        List<ChatMessage> messages = [new(ChatRole.User, "Once upon a time")];
        var first = await client.GetResponseAsync(messages, options, TestContext.CancellationToken);
        messages.AddRange(first.Messages);
        messages.Add(new ChatMessage(ChatRole.User, " One day, "));
        var second = await client.GetResponseAsync(messages, options, TestContext.CancellationToken);
        return [first.Text, second.Text];
    }
}

using Microsoft.Extensions.AI;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Chat;

/// <summary>Prompt templates: the plain default, custom ones, one stored in the model's metadata, stop sequences.</summary>
[TestClass]
public sealed class ChatTemplateTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void DefaultRendersOneLinePerMessageAndEndsWithTheAssistantPrompt()
    {
        ChatMessage[] messages =
        [
            new(ChatRole.System, "Be brief."), new(ChatRole.User, "Hi"), new(ChatRole.Assistant, "Hello."),
            new(ChatRole.Tool, "42"), new(ChatRole.User, "Thanks"),
        ];
        Assert.AreEqual("System: Be brief.\nUser: Hi\nAssistant: Hello.\ntool: 42\nUser: Thanks\nAssistant:", ChatTemplate.Default.Render(messages));
        Assert.AreEqual("Assistant:", ChatTemplate.Default.Render([]));
        CollectionAssert.AreEqual(new[] { "\nUser:", "\nAssistant:", "\nSystem:" }, ChatTemplate.Default.StopSequences.ToArray());
    }

    [TestMethod]
    public void CustomSpecRendersItsTextsAndRoundTripsThroughJson()
    {
        var spec = new ChatTemplateSpec
        {
            Prefix = "<doc>", SystemMessage = "[sys]{content}", UserMessage = "Q: {content}\n", AssistantMessage = "A: {content}\n",
            OtherMessage = "({role}) {content}\n", GenerationPrompt = "A:", StopSequences = ["\nQ:"],
        };
        var template = new ChatTemplate(ChatTemplateSpec.FromJson(spec.ToJson()));
        Assert.AreEqual("<doc>[sys]x(critic) {content} {role}\nQ: y\nA:",
            template.Render([new(ChatRole.System, "x"), new(new ChatRole("critic"), "{content} {role}"), new(ChatRole.User, "y")]),
            "placeholders inside a message's text are left alone");
        CollectionAssert.AreEqual(new[] { "\nQ:" }, template.StopSequences.ToArray());
        Assert.AreEqual(ChatTemplateSpec.Plain.ToJson(), ChatTemplateSpec.FromJson("{}").ToJson(), "missing fields take the plain defaults");
    }

    [TestMethod]
    public void InvalidSpecsNameTheField()
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() => ChatTemplateSpec.FromJson("""{"user":"Q: "}""", "m.onnx"));
        StringAssert.Contains(e.Message, "m.onnx");
        StringAssert.Contains(e.Message, "'user' must contain {content}");
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => ChatTemplateSpec.FromJson("""{"stop":["x",""]}""")).Message, "'stop'[1] is empty");
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => ChatTemplateSpec.FromJson("[1]")).Message, "chat template metadata: ");
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => ChatTemplateSpec.FromJson("null")).Message, "found null");
    }

    [TestMethod]
    public async Task TemplateInTheModelsMetadataIsUsedAndItsStopSequenceEndsTheReply()
    {
        using var tmp = TestPaths.NewTemp();
        var spec = ChatTemplateSpec.Plain with { UserMessage = "Question: {content}\n", GenerationPrompt = "Answer:" };
        using var model = GptModel.Load(ChatModels.ExportTinyGpt2(tmp, template: spec));
        Assert.AreEqual(spec.ToJson(), model.Metadata[MetadataKeys.ChatTemplate]);
        using var client = new OnnxGptChatClient(model);
        Assert.AreEqual(spec.ToJson(), ((ChatTemplate)client.Template).Spec.ToJson());

        // A reply without stops, then the same request stopped by a piece of it: the reply ends before that piece.
        ChatMessage[] messages = [new(ChatRole.User, "Describe the weather in three long sentences.")];
        var free = await client.GetResponseAsync(messages, new ChatOptions { Temperature = 0, MaxOutputTokens = 24 }, TestContext.CancellationToken);
        Assert.IsGreaterThan(12, free.Text.Length, $"reply: '{free.Text}'");
        string stop = free.Text.Substring(6, 3);
        var stopped = await client.GetResponseAsync(messages, new ChatOptions { Temperature = 0, MaxOutputTokens = 24, StopSequences = [stop] }, TestContext.CancellationToken);
        Assert.AreEqual(ChatFinishReason.Stop, stopped.FinishReason);
        Assert.AreEqual(free.Text[..free.Text.IndexOf(stop, StringComparison.Ordinal)].TrimEnd(), stopped.Text);
    }

    [TestMethod]
    public void BrokenTemplateInTheMetadataIsReportedWithTheKey()
    {
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(ChatModels.ExportTinyGpt2(tmp));
        Assert.IsFalse(model.Metadata.ContainsKey(MetadataKeys.ChatTemplate), "no template is recorded unless asked");
        Assert.AreSame(ChatTemplate.Default, ChatTemplate.ForModel(model));

        var metadata = (Dictionary<string, string>)model.Metadata;
        metadata[MetadataKeys.ChatTemplate] = "{\"assistant\": 3}";
        var e = Assert.ThrowsExactly<OnnxGptException>(() => ChatTemplate.ForModel(model));
        StringAssert.Contains(e.Message, MetadataKeys.ChatTemplate);
        StringAssert.Contains(e.Message, model.ModelPath);
    }
}

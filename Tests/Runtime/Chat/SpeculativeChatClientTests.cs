using Microsoft.Extensions.AI;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Chat;

/// <summary>
/// The chat client with speculative decoding in its default options (prompt lookup): the same greedy replies as
/// without, through its batch engine (fused graph) and through one generator per request (portable graph), over a
/// conversation that comes back (its cached prefix reused).
/// </summary>
[TestClass]
public sealed class SpeculativeChatClientTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public async Task RepliesAreThoseWithoutSpeculation(bool fused)
    {
        using var tmp = new TempFolder();
        using var model = GptModel.Load(ChatModels.ExportTinyGpt2(tmp, graph: fused ? new GraphOptions { Flavor = GraphFlavor.Fused } : null));
        var defaults = GenerationOptions.FromDefaults(model.GenerationDefaults);
        using var plain = new OnnxGptChatClient(model, new OnnxGptChatClientOptions { DefaultGenerationOptions = defaults });
        using var speculative = new OnnxGptChatClient(model, new OnnxGptChatClientOptions
        {
            DefaultGenerationOptions = defaults with { Speculation = new SpeculativeDecoding { PromptLookup = 2, DraftTokens = 4 } },
        });
        Assert.AreEqual(fused, speculative.Engine is not null);
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 24 };
        List<ChatMessage> a = [new(ChatRole.User, "Say it again and again and again")];
        List<ChatMessage> b = [.. a];
        for (int turn = 0; turn < 2; turn++)
        {
            var expected = await plain.GetResponseAsync(a, options, TestContext.CancellationToken);
            var actual = await speculative.GetResponseAsync(b, options, TestContext.CancellationToken);
            Assert.AreEqual(expected.Text, actual.Text, $"turn {turn}");
            Assert.AreEqual(expected.Usage!.OutputTokenCount, actual.Usage!.OutputTokenCount);
            if (speculative.Engine is { } engine)
            {
                // The engine verified several tokens per step: fewer steps than the plain client's engine took.
                long steps = engine.GetStatistics().Steps, plainSteps = plain.Engine!.GetStatistics().Steps;
                Assert.IsLessThan(plainSteps, steps, $"turn {turn}: {steps} steps with speculation, {plainSteps} without");
            }

            a.AddRange([.. expected.Messages, new(ChatRole.User, "And again")]);
            b.AddRange([.. actual.Messages, new(ChatRole.User, "And again")]);
        }
    }
}

using Microsoft.Extensions.AI;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Chat;

/// <summary>
/// The chat client on a fused graph, through its batch engine: concurrent requests on one client share steps and
/// reply as each would alone; a returning conversation continues from its slot.
/// </summary>
[TestClass]
public sealed class BatchedChatClientTests
{
    private static TempFolder? s_tmp;
    private static GptModel? s_model;

    public TestContext TestContext { get; set; } = null!;

    private static GptModel Model => s_model!;

    [ClassInitialize]
    public static void Initialize(TestContext _)
    {
        s_tmp = new TempFolder();
        s_model = GptModel.Load(ChatModels.ExportTinyGpt2(s_tmp, graph: new GraphOptions { Flavor = GraphFlavor.Fused }));
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        s_model?.Dispose();
        s_tmp?.Dispose();
    }

    private static ChatOptions Greedy(int maxTokens = 12) => new() { Temperature = 0, MaxOutputTokens = maxTokens };

    [TestMethod]
    public async Task ConcurrentRequestsOnOneClientShareStepsAndReplyAsAlone()
    {
        using var client = new OnnxGptChatClient(Model, new OnnxGptChatClientOptions { BatchSlots = 4 });
        using var alone = new OnnxGptChatClient(Model, new OnnxGptChatClientOptions { BatchSlots = 0, MaxCachedConversations = 0 });
        Assert.IsNotNull(client.Engine);
        Assert.AreEqual(4, client.Engine.Slots);
        var questions = Enumerable.Range(0, 7).Select(i => $"Question {i}: what comes after {i * 7}?").ToArray();
        var expected = new List<string>();
        foreach (var q in questions)
        {
            expected.Add((await alone.GetResponseAsync([new ChatMessage(ChatRole.User, q)], Greedy(10 + questions.Length), TestContext.CancellationToken)).Text);
        }

        var answers = await Task.WhenAll(questions.Select(q => client.GetResponseAsync([new ChatMessage(ChatRole.User, q)], Greedy(10 + questions.Length), TestContext.CancellationToken)));
        CollectionAssert.AreEqual(expected, answers.Select(a => a.Text).ToList());
        var stats = client.Engine.GetStatistics();
        long tokens = answers.Sum(a => a.Usage!.OutputTokenCount!.Value);
        Assert.AreEqual(tokens, stats.GeneratedTokens);
        Assert.IsLessThan(tokens, stats.Steps, $"{stats.Steps} steps for {tokens} tokens: the requests were decoded together");
    }

    [TestMethod]
    public async Task SecondTurnContinuesFromItsSlotAndRepliesAsAFreshClientWould()
    {
        using var client = new OnnxGptChatClient(Model, new OnnxGptChatClientOptions { BatchSlots = 2 });
        using var fresh = new OnnxGptChatClient(Model, new OnnxGptChatClientOptions { BatchSlots = 0, MaxCachedConversations = 0 });
        var messages = new List<ChatMessage> { new(ChatRole.User, "Tell me a story about a cat.") };
        var first = await client.GetResponseAsync(messages, Greedy(), TestContext.CancellationToken);
        Assert.AreEqual(1, client.CachedConversations, "the finished conversation keeps its slot");
        messages.AddMessages(first);
        messages.Add(new ChatMessage(ChatRole.User, "And then what happened?"));

        long before = client.ProcessedTokens;
        var second = await client.GetResponseAsync(messages, Greedy(), TestContext.CancellationToken);
        long fed = client.ProcessedTokens - before;
        long cached = second.Usage!.CachedInputTokenCount!.Value;
        Assert.IsGreaterThanOrEqualTo(first.Usage!.InputTokenCount!.Value - 1, cached, "the whole first prompt is reused");
        Assert.AreEqual(second.Usage.InputTokenCount!.Value - cached + second.Usage.OutputTokenCount!.Value - 1, fed,
            "only the uncached prompt tokens, then one per generated token but the last");
        var expected = await fresh.GetResponseAsync(messages, Greedy(), TestContext.CancellationToken);
        Assert.AreEqual(expected.Text, second.Text, "reusing the slot's cache changes nothing in the reply");
    }

    [TestMethod]
    public async Task CancelledRequestLeavesItsSlotAndTheClientKeepsServing()
    {
        using var client = new OnnxGptChatClient(Model, new OnnxGptChatClientOptions { BatchSlots = 1, MaxQueuedRequests = 0 });
        using var cancel = new CancellationTokenSource();
        int updates = 0;
        await Assert.ThrowsAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Go on.")], Greedy(400), cancel.Token))
            {
                if (++updates == 2)
                {
                    cancel.Cancel();
                }
            }
        });

        var stats = client.Engine!.GetStatistics();
        Assert.IsLessThan(400, stats.GeneratedTokens);
        var reply = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "Still there?")], Greedy(3), TestContext.CancellationToken);
        Assert.AreEqual(3, reply.Usage!.OutputTokenCount, "the one slot was free again (no queue: a busy engine would refuse)");
    }
}

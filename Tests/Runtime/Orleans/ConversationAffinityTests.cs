using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using OnnxGpt.Orleans.Client;
using OnnxGpt.Orleans.Conversations;
using OnnxGpt.Orleans.Hosting;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Orleans;

/// <summary>
/// Three silos in this process on the shipped Shakespeare model: a conversation stays on the silo that holds its
/// cache and later turns feed only their new tokens; chat through the cluster's IChatClient gives the library's own
/// chat client's replies; an idle conversation is deactivated and gives its slot back.
/// </summary>
[TestClass]
[DoNotParallelize]
public sealed class ConversationAffinityTests
{
    private static readonly TimeSpan Idle = TimeSpan.FromSeconds(2);
    private static TempFolder? s_tmp;
    private static GptModel? s_model;
    private static ConversationCluster? s_cluster;

    public TestContext TestContext { get; set; } = null!;

    private static ConversationCluster Cluster => s_cluster!;

    private CancellationToken Cancel => TestContext.CancellationToken;

    [ClassInitialize]
    public static async Task Initialize(TestContext _)
    {
        s_tmp = new TempFolder();
        string folder = ShakespeareFused.Export(s_tmp);
        s_model = GptModel.Load(folder);
        s_cluster = await ConversationCluster.StartAsync(folder, silos: 3, slots: 4, idleTimeout: Idle);
    }

    [ClassCleanup]
    public static async Task Cleanup()
    {
        if (s_cluster is not null)
        {
            await s_cluster.DisposeAsync();
        }

        s_model?.Dispose();
        s_tmp?.Dispose();
    }

    [TestMethod]
    public async Task ATenTurnConversationStaysOnOneSiloAndTurnsTwoToTenFeedOnlyTheirNewTokens()
    {
        string[] inputs = ["ROMEO:\n", "\nKING:", "\nLEAR:", "\nJOHN:", "\nNURSE:", "\nPAGE:", "\nLORD:", "\nFOOL:", "\nDUKE:", "\nQUEEN:"];
        var greedy = new GenerationOverrides { Greedy = true, MaxNewTokens = 5 };
        string? silo = null;
        int previousLength = 0;
        var fed = new List<long>();
        long uncached = 0;
        for (int t = 0; t < inputs.Length; t++)
        {
            var (text, done) = await Cluster.TurnAsync("affinity-10", new ConversationTurn { Text = inputs[t], Options = greedy }, Cancel);
            var usage = done.Usage!;
            silo ??= done.Silo;
            Assert.AreEqual(silo, done.Silo, $"turn {t + 1} ran on another silo than turn 1");
            Assert.AreEqual(t + 1, done.Turn);
            Assert.AreEqual(5, usage.GeneratedTokens);
            Assert.AreEqual(previousLength + inputs[t].Length, usage.PromptTokens, "a text turn continues the token history (one token per character)");
            // The engine keeps all but the last generated token cached, so a returning turn feeds that one, its input and the decoding steps.
            Assert.AreEqual(t == 0 ? 0 : previousLength - 1, usage.ReusedTokens, $"turn {t + 1}: prompt tokens found in the silo's cache");
            Assert.AreEqual(usage.PromptTokens - usage.ReusedTokens + usage.GeneratedTokens - 1, usage.FedTokens, $"turn {t + 1}: tokens fed");

            // The reply is what the library's own generator picks greedily after the same tokens.
            var snapshot = await Cluster.Client.GetSnapshotAsync("affinity-10", Cancel);
            int[] prompt = [.. snapshot.Tokens.Take(usage.PromptTokens)];
            Assert.AreEqual(Greedy(prompt, 5), text, $"turn {t + 1}: greedy reply");
            previousLength = snapshot.Tokens.Count;
            fed.Add(usage.FedTokens);
            uncached += usage.PromptTokens + usage.GeneratedTokens - 1;
            Assert.AreEqual(inputs[t].Length + (t == 0 ? 4 : 5), usage.FedTokens, $"turn {t + 1} fed its input, the last reply token (after turn 1) and 4 decoding steps");
        }

        Console.WriteLine($"fed per turn: {string.Join(", ", fed)} ({fed.Sum()} in all, against {uncached} if every turn fed its whole prompt); all on {silo}");
    }

    [TestMethod]
    public async Task ChatThroughTheClusterChatClientGivesTheLibraryChatClientsReplies()
    {
        using var alone = new OnnxGptChatClient(s_model!, new OnnxGptChatClientOptions { BatchSlots = 0 });
        var services = new ServiceCollection();
        services.AddSingleton<IGrainFactory>(Cluster.Cluster.Client);
        services.AddOnnxGptClusterChatClient(new ClusterChatClientOptions { Conversations = ConversationCluster.ClientOptions });
        using var provider = services.BuildServiceProvider();
        var cluster = provider.GetRequiredService<IChatClient>();
        Assert.IsInstanceOfType<OnnxGptClusterChatClient>(cluster.GetService(typeof(OnnxGptClusterChatClient)));

        string[] said = ["Speak.", "Why?", "Go."];
        ChatOptions[] options =
        [
            new() { Temperature = 0, MaxOutputTokens = 8 },
            new() { Temperature = 0.8f, Seed = 3, MaxOutputTokens = 8 },
            new() { Temperature = 0, MaxOutputTokens = 6, StopSequences = ["e"] },
        ];
        var history = new List<ChatMessage>();       // the whole conversation each time (no id: a hash of its start)
        string id = "chat-by-id-" + Guid.NewGuid().ToString("N");
        for (int t = 0; t < said.Length; t++)
        {
            history.Add(new ChatMessage(ChatRole.User, said[t]));
            var expected = await alone.GetResponseAsync(history, options[t], Cancel);
            var full = await cluster.GetResponseAsync(history, options[t], Cancel);
            // The same turns through a conversation id: only the new message goes; the grain keeps the rest.
            var withId = options[t].Clone();
            withId.ConversationId = id;
            var byId = await cluster.GetResponseAsync([history[^1]], withId, Cancel);
            Assert.AreEqual(expected.Text, full.Text, $"turn {t + 1}, whole history");
            Assert.AreEqual(expected.Text, byId.Text, $"turn {t + 1}, by conversation id");
            Assert.AreEqual(id, byId.ConversationId);
            Assert.IsNull(full.ConversationId, "without an id the caller keeps the history, so none is handed back");
            Assert.AreEqual(expected.FinishReason, full.FinishReason);
            history.Add(new ChatMessage(ChatRole.Assistant, full.Text));
        }

        var snapshot = await Cluster.Client.GetSnapshotAsync(id, Cancel);
        CollectionAssert.AreEqual(history.Select(m => $"{m.Role.Value}: {m.Text}").ToArray(), snapshot.Messages.Select(m => $"{m.Role}: {m.Text}").ToArray(),
            "the conversation by id holds every message and reply");
    }

    [TestMethod]
    public async Task AnIdleConversationIsDeactivatedAndGivesItsSlotBack()
    {
        await WaitUntilAsync(() => Cluster.Cluster.Silos.All(s => ConversationCluster.Taken(s) == 0), "every earlier conversation to go idle");
        var first = await Cluster.TurnAsync("idle-1", new ConversationTurn { Text = "ROMEO:\n", Options = new GenerationOverrides { Greedy = true, MaxNewTokens = 4 } }, Cancel);
        var silo = Cluster.Silo(first.Completed.Silo);
        Assert.AreEqual(1, ConversationCluster.Taken(silo), "the live conversation holds a slot");
        var engine = silo.ServiceProvider.GetRequiredService<ConversationEngineHost>().Engine;
        Assert.AreEqual(1, engine.GetStatistics().IdleConversations, "its sequence waits in the engine for the next turn");

        await WaitUntilAsync(() => ConversationCluster.Taken(silo) == 0 && engine.GetStatistics().IdleConversations == 0, "the idle conversation's slot to come back");
        var next = await Cluster.TurnAsync("idle-1", new ConversationTurn { Text = "\nKING:", Options = new GenerationOverrides { Greedy = true, MaxNewTokens = 4 } }, Cancel);
        Assert.AreEqual(2, next.Completed.Turn, "the deactivated conversation's history was kept");
        Assert.AreEqual(0, next.Completed.Usage!.ReusedTokens, "its cache was released: the history is fed again");
        Assert.AreEqual(Greedy([.. (await Cluster.Client.GetSnapshotAsync("idle-1", Cancel)).Tokens.Take(next.Completed.Usage.PromptTokens)], 4), next.Text);
    }

    private string Greedy(int[] prompt, int tokens)
    {
        using var generator = s_model!.CreateGenerator(new GenerationOptions { DoSample = false, MaxNewTokens = tokens });
        generator.Append(prompt);
        return generator.GenerateAll()[0].Text!;
    }

    private async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.IsLessThan(Idle.TotalSeconds + 20, clock.Elapsed.TotalSeconds, $"waited {clock.Elapsed.TotalSeconds:F0} s for {what}");
            await Task.Delay(100, Cancel);
        }
    }
}

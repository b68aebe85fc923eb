using OnnxGpt.Orleans.Conversations;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Orleans;

/// <summary>
/// A silo dies with a conversation on it, between turns or in the middle of a reply: the conversation comes back on
/// another silo from its saved history, and the reply is the one an uninterrupted run gives, greedy or sampled from
/// a seeded stream going on across turns. Each test repeats with fresh conversations and a fresh kill: between turns
/// 20 times (the bar: 20 of 20 identical), mid-reply 5 times; <c>ONNXGPT_FAILOVER_TRIES</c> sets both
/// (<c>build.ps1 failover</c> runs both 20 times).
/// </summary>
[TestClass]
[DoNotParallelize]
public sealed class ConversationFailoverTests
{
    private static TempFolder? s_tmp;
    private static ConversationCluster? s_cluster;

    public TestContext TestContext { get; set; } = null!;

    /// <summary>How many times a test kills a silo: <c>ONNXGPT_FAILOVER_TRIES</c>, or the test's own default.</summary>
    private static int Tries(int byDefault) => int.TryParse(Environment.GetEnvironmentVariable("ONNXGPT_FAILOVER_TRIES"), out int n) && n > 0 ? n : byDefault;

    private static ConversationCluster Cluster => s_cluster!;

    private CancellationToken Cancel => TestContext.CancellationToken;

    [ClassInitialize]
    public static async Task Initialize(TestContext _)
    {
        s_tmp = new TempFolder();
        s_cluster = await ConversationCluster.StartAsync(ShakespeareFused.Export(s_tmp), silos: 3, slots: 4);
    }

    [ClassCleanup]
    public static async Task Cleanup()
    {
        if (s_cluster is not null)
        {
            await s_cluster.DisposeAsync();
        }

        s_tmp?.Dispose();
    }

    /// <summary>
    /// Seeded sampling, its stream going on across turns (only the first has a seed), a greedy turn between (which
    /// draws nothing), and sampling again from where the stream stopped.
    /// </summary>
    private static readonly ConversationTurn[] Turns =
    [
        new() { Text = "ROMEO:\n", Options = new GenerationOverrides { Temperature = 0.8, Seed = 11, MaxNewTokens = 8 } },
        new() { Text = "\nKING:", Options = new GenerationOverrides { Temperature = 0.8, MaxNewTokens = 8 } },
        new() { Text = "\nLEAR:", Options = new GenerationOverrides { Greedy = true, MaxNewTokens = 6 } },
        new() { Text = "\nJOHN:", Options = new GenerationOverrides { Temperature = 0.8, MaxNewTokens = 8 } },
    ];

    [TestMethod]
    public async Task KillingTheSiloBetweenTurnsGivesExactlyTheTokensOfAnUninterruptedRun()
    {
        int identical = 0, tries = Tries(20);
        for (int attempt = 0; attempt < tries; attempt++)
        {
            string reference = $"between-ref-{attempt}", victim = $"between-kill-{attempt}";
            var expected = new List<string>();
            foreach (var turn in Turns)
            {
                expected.Add((await Cluster.TurnAsync(reference, turn, Cancel)).Text);
            }

            // Gone, so its cache (the same tokens) cannot serve the victim's turns: the engine shares any conversation's prefix.
            await Cluster.Client.ClearAsync(reference, Cancel);

            string? home = null;
            for (int t = 0; t < Turns.Length; t++)
            {
                if (t == 2)
                {
                    await Cluster.KillAndReplaceAsync(home!);   // the conversation's silo dies between turns 2 and 3
                }

                var (text, done) = await Cluster.TurnAsync(victim, Turns[t], Cancel);
                Assert.AreEqual(expected[t], text, $"try {attempt + 1}, turn {t + 1}: the reply differs from the uninterrupted run's");
                if (t == 2)
                {
                    Assert.AreNotEqual(home, done.Silo, "the conversation came back on another silo");
                    Assert.AreEqual(0, done.Usage!.ReusedTokens, "a silo that never saw the conversation has none of its cache");
                    Assert.AreEqual(done.Usage.PromptTokens + done.Usage.GeneratedTokens - 1, done.Usage.FedTokens, "it rebuilt the cache from the saved history");
                }

                Assert.AreEqual(t + 1, done.Turn);
                home = done.Silo;
            }

            await Cluster.Client.ClearAsync(victim, Cancel);   // its cache must not serve the next try's conversations
            identical++;
        }

        Console.WriteLine($"between turns: {identical} of {tries} conversations identical to their uninterrupted runs after their silo's loss");
    }

    [TestMethod]
    public async Task KillingTheSiloMidReplyEndsTheStreamWithARetryableErrorAndTheRetryGivesTheWholeReply()
    {
        var opening = new ConversationTurn { Text = "ROMEO:\n", Options = new GenerationOverrides { Greedy = true, MaxNewTokens = 5 } };
        var longReply = new ConversationTurn { Text = "\nKING:", Options = new GenerationOverrides { Temperature = 0.8, MaxNewTokens = 60 }, TurnId = "reply-2" };
        int identical = 0, tries = Tries(5);
        for (int attempt = 0; attempt < tries; attempt++)
        {
            string reference = $"mid-ref-{attempt}", victim = $"mid-kill-{attempt}";
            await Cluster.TurnAsync(reference, opening with { Options = opening.Options with { Seed = (ulong)attempt } }, Cancel);
            string expected = (await Cluster.TurnAsync(reference, longReply, Cancel)).Text;
            await Cluster.Client.ClearAsync(reference, Cancel);

            var first = await Cluster.TurnAsync(victim, opening with { Options = opening.Options with { Seed = (ulong)attempt } }, Cancel);
            var partial = new System.Text.StringBuilder();
            var error = await Assert.ThrowsExactlyAsync<ConversationInterruptedException>(async () =>
            {
                bool killed = false;
                await foreach (var update in Cluster.Client.ContinueAsync(victim, longReply, Cancel))
                {
                    Assert.AreNotEqual(ConversationUpdateKind.Completed, update.Kind, "the turn completed before its silo was killed");
                    partial.Append(update.Text);
                    if (!killed)
                    {
                        killed = true;
                        await Cluster.KillAndReplaceAsync(first.Completed.Silo);   // the silo dies with the reply under way
                    }
                }
            });
            Assert.IsGreaterThanOrEqualTo(1, error.TokensReceived);
            StringAssert.Contains(error.Message, "send it again");
            StringAssert.StartsWith(expected, partial.ToString(), "the tokens before the break were the reply's");

            var saved = await Cluster.Client.GetSnapshotAsync(victim, Cancel);
            Assert.AreEqual(1, saved.Turns, "nothing of the broken turn was saved");
            var (text, done) = await Cluster.TurnAsync(victim, longReply, Cancel);
            Assert.AreEqual(expected, text, $"try {attempt + 1}: the retried reply differs from the uninterrupted run's");
            Assert.AreEqual(2, done.Turn);

            // Sent once more (its completion lost, say), the same turn id replaces the saved turn rather than adding one.
            var (again, replaced) = await Cluster.TurnAsync(victim, longReply, Cancel);
            Assert.AreEqual(expected, again);
            Assert.AreEqual(2, replaced.Turn, "a turn sent again by its id takes its own place");
            await Cluster.Client.ClearAsync(victim, Cancel);
            identical++;
        }

        Console.WriteLine($"mid-reply: {identical} of {tries} retried replies identical to their uninterrupted runs");
    }
}

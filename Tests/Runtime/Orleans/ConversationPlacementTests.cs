using OnnxGpt.Orleans.Conversations;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Orleans;

/// <summary>
/// Placement by free engine slots on three silos of ten slots: thirty conversations arriving at once spread ten to a
/// silo and none is refused; the thirty-first is (every slot is held); a slot given back is taken at once.
/// </summary>
[TestClass]
[DoNotParallelize]
public sealed class ConversationPlacementTests
{
    private const int Silos = 3, Slots = 10;
    private static TempFolder? s_tmp;
    private static ConversationCluster? s_cluster;

    public TestContext TestContext { get; set; } = null!;

    private static ConversationCluster Cluster => s_cluster!;

    private CancellationToken Cancel => TestContext.CancellationToken;

    [ClassInitialize]
    public static async Task Initialize(TestContext _)
    {
        s_tmp = new TempFolder();
        s_cluster = await ConversationCluster.StartAsync(ShakespeareFused.Export(s_tmp), Silos, Slots);
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

    [TestMethod]
    public async Task ThirtyConversationsSpreadWithinTheSlotsAndNoneIsRefusedWhileASiloHasRoom()
    {
        var turn = new ConversationTurn { Text = "ROMEO:\n", Options = new GenerationOverrides { Greedy = true, MaxNewTokens = 2 } };
        var done = await Task.WhenAll(Enumerable.Range(0, Silos * Slots).Select(i => Cluster.TurnAsync($"spread-{i}", turn, Cancel)));
        var bySilo = done.GroupBy(d => d.Completed.Silo).ToDictionary(g => g.Key, g => g.Count());
        Console.WriteLine("conversations per silo: " + string.Join(", ", bySilo.Select(p => $"{p.Key} {p.Value}")));
        Assert.HasCount(Silos, bySilo, "every silo got conversations");
        Assert.IsTrue(bySilo.Values.All(n => n == Slots), $"each silo holds exactly its {Slots} slots: {string.Join(", ", bySilo.Values)}");
        foreach (var silo in Cluster.Cluster.Silos)
        {
            Assert.AreEqual(Slots, ConversationCluster.Taken(silo), $"{silo.SiloAddress}: its ledger counts its conversations");
        }

        // Every slot is held: the next conversation is refused with a clear, retryable error.
        var refused = await Assert.ThrowsExactlyAsync<ConversationCapacityException>(() => Cluster.TurnAsync("spread-extra", turn, Cancel));
        StringAssert.Contains(refused.Message, "every slot");

        // A conversation that ends gives its slot back, and the new one gets it.
        string freed = done[7].Completed.Silo;
        await Cluster.Client.ClearAsync("spread-7", Cancel);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (ConversationCluster.Taken(Cluster.Silo(freed)) == Slots)
        {
            Assert.IsLessThan(10.0, clock.Elapsed.TotalSeconds, "the cleared conversation's slot did not come back");
            await Task.Delay(20, Cancel);
        }

        var placed = await Cluster.TurnAsync("spread-extra", turn, Cancel);
        Assert.AreEqual(freed, placed.Completed.Silo, "the only free slot was on the cleared conversation's silo");
    }
}

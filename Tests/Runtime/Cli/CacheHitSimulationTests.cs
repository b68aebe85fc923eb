using OnnxGpt.Cli.Benchmarking;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary>The cache-hit simulation of docs/scale-out.md gives the answers that can be worked out by hand.</summary>
[TestClass]
public sealed class CacheHitSimulationTests
{
    private static readonly CacheHitSimulation.Settings Small = new() { Nodes = 10, Slots = 8, DurationSeconds = 1800, Seed = 3 };

    [TestMethod]
    public void WithRoomForEveryConversationAndNoIdleReleaseAffinityHitsEveryReturningTurn()
    {
        var (affinity, random) = new CacheHitSimulation(Small with { Slots = 10_000, IdleTimeoutSeconds = 1e9 }).Run();
        Assert.IsGreaterThan(100, affinity.ReturningTurns);
        Assert.AreEqual(affinity.ReturningTurns, affinity.Hits, "every returning turn finds its conversation where it was placed");
        Assert.AreEqual(0, affinity.Refused);
        // Without affinity a returning turn finds its cache only on the node that holds it: about one in ten.
        Assert.IsLessThan(0.2, random.HitRate, $"random router: {random.HitRate:P1}");
        Assert.IsGreaterThan(0.03, random.HitRate, $"random router: {random.HitRate:P1}");
    }

    [TestMethod]
    public void AnIdleTimeoutShorterThanEveryThinkTimeMissesEveryReturningTurn()
    {
        var (affinity, _) = new CacheHitSimulation(Small with { ThinkMedianSeconds = 60, ThinkSigma = 0, TurnSeconds = 5, IdleTimeoutSeconds = 30 }).Run();
        Assert.IsGreaterThan(100, affinity.ReturningTurns);
        Assert.AreEqual(0, affinity.Hits, "each conversation's slot was released before its next turn");
    }

    [TestMethod]
    public void TheSameSeedGivesTheSameOutcome()
    {
        var a = new CacheHitSimulation(Small).Run();
        var b = new CacheHitSimulation(Small).Run();
        Assert.AreEqual(a, b);
        Assert.AreNotEqual(a.Affinity.Turns, new CacheHitSimulation(Small with { Seed = 4 }).Run().Affinity.Turns);
    }
}

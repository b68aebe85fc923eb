using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Batching;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Batching;

/// <summary>
/// The two seams a conversation that moves between engines needs: a request's sampler can start from the random
/// state another request finished with (so a seeded stream goes on where it stopped), and a finished conversation's
/// idle slot can be released at once.
/// </summary>
[TestClass]
public sealed class BatchEngineResumeTests
{
    private static readonly GenerationOptions Sampling = new() { MaxNewTokens = 10, Temperature = 1.0, TopK = 0, Seed = 7 };
    private static TestModels.OwnedModel? s_owned;

    public TestContext TestContext { get; set; } = null!;

    private static GptModel Model => s_owned!.Model;

    [ClassInitialize]
    public static void Initialize(TestContext _)
    {
        s_owned = TestModels.LoadSmallFused(seed: 103);
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        s_owned?.Dispose();
    }

    [TestMethod]
    public async Task ASecondRequestGivenTheFirstsRandomStateSamplesOnAsOneLongRequestWould()
    {
        int[] prompt = [3, 14, 15, 9, 2];
        using var engine = BatchEngine.Start(Model, new BatchEngineOptions { Slots = 2 });
        var whole = await BatchEngineTests.Read(engine.Submit(prompt, Sampling with { MaxNewTokens = 20 }, cancellationToken: TestContext.CancellationToken));

        var first = engine.Submit(prompt, Sampling, cancellationToken: TestContext.CancellationToken);
        var part1 = await BatchEngineTests.Read(first);
        Assert.IsNotNull(first.RandomState, "a finished request reports its sampler's random state");
        int[] continued = [.. prompt, .. part1];
        // No seed of its own: the stream goes on from the state, not from a seed.
        var second = engine.Submit(continued, Sampling with { Seed = null }, cancellationToken: TestContext.CancellationToken, randomState: first.RandomState);
        var part2 = await BatchEngineTests.Read(second);

        CollectionAssert.AreEqual(whole, part1.Concat(part2).ToArray(),
            $"one request of 20: {string.Join(",", whole)}; two of 10 resumed: {string.Join(",", part1.Concat(part2))}");

        // Restarting from the seed instead replays the first ten draws: another continuation.
        var reseeded = await BatchEngineTests.Read(engine.Submit(continued, Sampling, cancellationToken: TestContext.CancellationToken));
        CollectionAssert.AreNotEqual(part2, reseeded, "the seed's stream restarted gives other tokens than the resumed one");
    }

    [TestMethod]
    public void ARandomStateThatIsNotFourWordsOrIsAllZeroIsRefusedAtSubmit()
    {
        using var engine = BatchEngine.Start(Model, new BatchEngineOptions { Slots = 1 });
        var e = Assert.ThrowsExactly<ArgumentException>(() => engine.Submit([1, 2], Sampling, randomState: [1UL, 2UL]));
        StringAssert.Contains(e.Message, "four words");
        Assert.ThrowsExactly<ArgumentException>(() => engine.Submit([1, 2], Sampling, randomState: [0UL, 0UL, 0UL, 0UL]));
        Assert.AreEqual(0, engine.GetStatistics().ActiveSequences + engine.GetStatistics().QueuedRequests, "nothing was queued");
    }

    [TestMethod]
    public async Task ReleasingAFinishedConversationEmptiesItsSlotUnlessALaterRequestTookItOver()
    {
        using var engine = BatchEngine.Start(Model, new BatchEngineOptions { Slots = 2 });
        var greedy = new GenerationOptions { DoSample = false, MaxNewTokens = 4 };
        int[] prompt = [5, 6, 7, 8, 9, 10];
        var first = engine.Submit(prompt, greedy, cancellationToken: TestContext.CancellationToken);
        var reply = await BatchEngineTests.Read(first);
        Assert.AreEqual(1, engine.GetStatistics().IdleConversations, "the finished conversation keeps its slot");

        // A request continuing it takes the slot over: releasing the first request then leaves that conversation alone.
        int[] next = [.. prompt, .. reply, 11];
        var second = engine.Submit(next, greedy, cancellationToken: TestContext.CancellationToken);
        await BatchEngineTests.Read(second);
        Assert.AreEqual(prompt.Length + reply.Length - 1, second.ReusedTokens, "the second request continued the first's cache");
        engine.ReleaseConversation(first);
        await Task.Delay(100, TestContext.CancellationToken);   // the engine's thread applies releases at its next step
        Assert.AreEqual(1, engine.GetStatistics().IdleConversations, "releasing a request whose slot another took over frees nothing");

        engine.ReleaseConversation(second);
        await WaitUntil(() => engine.GetStatistics().IdleConversations == 0, "the release of the conversation's last request");
        var again = engine.Submit([.. next, .. second.Result!.NewIds, 12], greedy, cancellationToken: TestContext.CancellationToken);
        await BatchEngineTests.Read(again);
        Assert.AreEqual(0, again.ReusedTokens, "a released conversation's cache is gone: it is fed again from the start");
    }

    private async Task WaitUntil(Func<bool> condition, string what)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.IsLessThan(10.0, clock.Elapsed.TotalSeconds, $"{what}: not seen within 10 s");
            await Task.Delay(5, TestContext.CancellationToken);
        }
    }
}

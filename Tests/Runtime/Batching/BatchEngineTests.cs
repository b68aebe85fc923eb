using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Batching;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Batching;

/// <summary>
/// The batch engine against each request run alone: tokens, logits, seeds, stops and reuse while other sequences join
/// and leave; slots freed by cancellation; the bounded queue; the portable graph refused.
/// </summary>
[TestClass]
public sealed class BatchEngineTests
{
    private const float Tolerance = 1e-4f;
    private static readonly GenerationOptions Greedy = new() { DoSample = false, MaxNewTokens = 12 };
    private static TestModels.OwnedModel? s_owned;

    public TestContext TestContext { get; set; } = null!;

    private static GptModel Model => s_owned!.Model;

    [ClassInitialize]
    public static void Initialize(TestContext _)
    {
        s_owned = TestModels.LoadSmallFused(seed: 101);
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        s_owned?.Dispose();
    }

    [TestMethod]
    public async Task GreedyRequestsJoiningAndLeavingGetTheirSoloTokensAndLogits()
    {
        int[][] prompts = [[5, 17, 3, 52, 9], [8, 41, 2], [30], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], [44, 45], [7, 7, 7, 7]];
        int[] maxTokens = [12, 3, 20, 6, 15, 9];
        var solo = prompts.Select((p, i) => Solo(p, Greedy with { MaxNewTokens = maxTokens[i] })).ToArray();

        using var engine = BatchEngine.Start(Model, new BatchEngineOptions { Slots = 3, PrefillChunkTokens = 4 });
        var seen = prompts.Select(_ => new List<float[]>()).ToArray();
        var requests = new BatchRequest[prompts.Length];
        var readers = new Task<int[]>[prompts.Length];
        for (int i = 0; i < prompts.Length; i++)
        {
            int k = i;
            requests[i] = engine.Submit(prompts[i], Greedy with { MaxNewTokens = maxTokens[i] }, (_, logits) => seen[k].Add(logits.ToArray()), TestContext.CancellationToken);
            readers[i] = Read(requests[i]);
            if (i == 1 || i == 3)
            {
                await WaitForTokens(requests[0], 2 * i);   // let some decode before the next join
            }
        }

        for (int i = 0; i < prompts.Length; i++)
        {
            var tokens = await readers[i];
            CollectionAssert.AreEqual(solo[i].Tokens, tokens, $"request {i}: expected {string.Join(",", solo[i].Tokens)}, got {string.Join(",", tokens)}");
            Assert.AreEqual(FinishReason.MaxNewTokens, requests[i].FinishReason);
            Assert.AreEqual(maxTokens[i], seen[i].Count, $"request {i}: one logits row per token");
            for (int s = 0; s < seen[i].Count; s++)
            {
                float diff = MaxDiff(solo[i].Logits[s], seen[i][s]);
                Assert.IsLessThanOrEqualTo(Tolerance, diff, $"request {i}, token {s}: logits differ from the solo run by {diff}");
            }

            CollectionAssert.AreEqual(prompts[i].Concat(solo[i].Tokens).ToArray(), requests[i].Result!.Ids.ToArray());
        }

        var stats = engine.GetStatistics();
        Assert.AreEqual(maxTokens.Sum(), stats.GeneratedTokens);
        Assert.IsLessThan(maxTokens.Sum(), stats.Steps, $"requests shared steps: {stats.Steps} steps for {stats.GeneratedTokens} tokens");
        Assert.AreEqual(0, stats.ActiveSequences);
    }

    [TestMethod]
    public async Task SeededSamplingPicksTheSameTokensWhateverElseIsInTheBatch()
    {
        var sampling = new GenerationOptions { Temperature = 1.3, TopK = 0, Seed = 77, MaxNewTokens = 16 };
        int[] prompt = [3, 1, 4, 1, 5];
        var alone = Solo(prompt, sampling).Tokens;

        using var engine = BatchEngine.Start(Model, new BatchEngineOptions { Slots = 4 });
        var others = Enumerable.Range(0, 3).Select(i => engine.Submit([9 + i, 2 * i + 1], sampling with { Seed = (ulong)i, MaxNewTokens = 5 + 4 * i })).ToArray();
        var request = engine.Submit(prompt, sampling, cancellationToken: TestContext.CancellationToken);
        CollectionAssert.AreEqual(alone, await Read(request));
        await Task.WhenAll(others.Select(o => o.Completion));
    }

    [TestMethod]
    public async Task PromptFedInChunksLetsTheOthersDecodeMeanwhile()
    {
        using var engine = BatchEngine.Start(Model, new BatchEngineOptions { Slots = 2, PrefillChunkTokens = 4 });
        int decodedWhilePrefilling = -1, aCalls = 0;
        var a = engine.Submit([1, 2, 3], Greedy with { MaxNewTokens = 40 }, (_, _) =>
        {
            Interlocked.Increment(ref aCalls);
            Thread.Sleep(2);   // slow enough to be cancelled while it still decodes
        }, TestContext.CancellationToken);
        await WaitForTokens(a, 2);
        int before = Volatile.Read(ref aCalls);
        var prompt = Enumerable.Range(1, 20).ToArray();
        var b = engine.Submit(prompt, Greedy with { MaxNewTokens = 2 }, (_, _) => decodedWhilePrefilling = Volatile.Read(ref aCalls) - before, TestContext.CancellationToken);
        CollectionAssert.AreEqual(Solo(prompt, Greedy with { MaxNewTokens = 2 }).Tokens, await Read(b));
        Assert.IsGreaterThanOrEqualTo(4, decodedWhilePrefilling, $"a 20-token prompt in chunks of 4 takes 5 steps, each decoding the other request; it decoded {decodedWhilePrefilling}");
        a.Cancel();
        await Assert.ThrowsAsync<OperationCanceledException>(() => a.Completion);
    }

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public async Task LateArrivalsGetTheirSoloTokensAndSoDoTheRowsTheyInterrupt(bool interrupt)
    {
        int[][] decoding = [[1, 2], [3, 4], [5, 6]];
        var decodingOptions = Greedy with { MaxNewTokens = 55 };
        var decodingSolo = decoding.Select(p => Solo(p, decodingOptions).Tokens).ToArray();
        int[][] prompts = [.. Enumerable.Range(0, 8).Select(i => new[] { 10 + i, 20 + i, 30 + i })];
        var solo = prompts.Select(p => Solo(p, Greedy with { MaxNewTokens = 3 }).Tokens).ToArray();
        using var engine = BatchEngine.Start(Model, new BatchEngineOptions { Slots = 4, InterruptDecodingForNewRequests = interrupt });

        // Rounds of three decoding requests and eight that arrive one after another while they decode, until a late
        // one has interrupted a decoding run (a tiny model's runs are short, so most arrive between runs).
        int rounds = 0;
        while (rounds++ < (interrupt ? 40 : 3) && (!interrupt || engine.GetStatistics().InterruptedRuns == 0))
        {
            var others = decoding.Select(p => engine.Submit(p, decodingOptions)).ToArray();
            var readers = others.Select(Read).ToArray();
            await WaitForTokens(others[0], 2);
            for (int i = 0; i < prompts.Length; i++)
            {
                var late = engine.Submit(prompts[i], Greedy with { MaxNewTokens = 3 });
                CollectionAssert.AreEqual(solo[i], await Read(late), $"round {rounds}, late request {i}");
            }

            for (int i = 0; i < others.Length; i++)
            {
                CollectionAssert.AreEqual(decodingSolo[i], await readers[i], $"round {rounds}, decoding request {i}");
            }
        }

        long interrupted = engine.GetStatistics().InterruptedRuns;
        Console.WriteLine($"interrupt {interrupt}: {interrupted} decoding runs interrupted in {rounds - 1} rounds");
        Assert.AreEqual(interrupt, interrupted > 0, $"{interrupted} decoding runs interrupted in {rounds - 1} rounds of 8 late requests");
    }

    [TestMethod]
    public async Task CancellingOrAbandoningARequestFreesItsSlot()
    {
        using var engine = BatchEngine.Start(Model, new BatchEngineOptions { Slots = 1, MaxQueuedRequests = 4, MaxIdleConversations = 0 });
        using var cancel = new CancellationTokenSource();
        var first = engine.Submit([1, 2, 3], Greedy with { MaxNewTokens = 50 }, Slow, cancel.Token);
        var waiting = engine.Submit([4, 5], Greedy with { MaxNewTokens = 3 });
        await WaitForTokens(first, 2);
        Assert.AreEqual(-1, waiting.Slot, "one slot: the second request waits");
        cancel.Cancel();
        await Assert.ThrowsAsync<OperationCanceledException>(() => first.Completion);
        CollectionAssert.AreEqual(Solo([4, 5], Greedy with { MaxNewTokens = 3 }).Tokens, await Read(waiting), "the waiting request got the freed slot");

        // A reader that stops reading (an HTTP client that went away) cancels its request too.
        var abandoned = engine.Submit([6, 7], Greedy with { MaxNewTokens = 50 }, Slow);
        await foreach (var _ in abandoned.ReadTokensAsync(TestContext.CancellationToken))
        {
            break;
        }

        await Assert.ThrowsAsync<OperationCanceledException>(() => abandoned.Completion);
        var next = engine.Submit([8], Greedy with { MaxNewTokens = 2 });
        Assert.HasCount(2, await Read(next));
        Assert.AreEqual(1, engine.GetStatistics().FreeSlots);
    }

    [TestMethod]
    public async Task BeyondTheSlotsAndTheQueueRequestsAreRefused()
    {
        using var engine = BatchEngine.Start(Model, new BatchEngineOptions { Slots = 1, MaxQueuedRequests = 1 });
        var running = engine.Submit([1], Greedy with { MaxNewTokens = 60 }, Slow);
        var queued = engine.Submit([2], Greedy with { MaxNewTokens = 2 });
        var e = Assert.ThrowsExactly<BatchEngineBusyException>(() => engine.Submit([3], Greedy));
        StringAssert.Contains(e.Message, "1 slots");
        running.Cancel();
        Assert.HasCount(2, await Read(queued));
        Assert.HasCount(2, await Read(engine.Submit([3], Greedy with { MaxNewTokens = 2 })), "room again once the others left");
    }

    [TestMethod]
    public async Task ReturningConversationContinuesFromItsSlot()
    {
        using var engine = BatchEngine.Start(Model, new BatchEngineOptions { Slots = 2 });
        int[] first = [11, 12, 13, 14, 15, 16];
        var turn1 = engine.Submit(first, Greedy with { MaxNewTokens = 6 });
        var reply = await Read(turn1);
        Assert.AreEqual(0, turn1.ReusedTokens);
        var other = engine.Submit([40, 41, 42], Greedy with { MaxNewTokens = 3 });   // takes the empty slot, not the idle one
        await Read(other);

        int[] second = [.. first, .. reply, 20, 21];
        var turn2 = engine.Submit(second, Greedy with { MaxNewTokens = 6 });
        CollectionAssert.AreEqual(Solo(second, Greedy with { MaxNewTokens = 6 }).Tokens, await Read(turn2));
        Assert.AreEqual(turn1.Result!.Row, turn2.Result!.Row, "the conversation came back to its own slot");
        Assert.AreNotEqual(turn1.Result.Row, other.Result!.Row);
        Assert.AreEqual(first.Length + reply.Length - 1, turn2.ReusedTokens, "every token of the first turn but its last (never fed) came from the cache");
        Assert.AreEqual(second.Length - turn2.ReusedTokens + 5, turn2.FedTokens, "only the new prompt tokens, then one per step");
    }

    [TestMethod]
    public async Task StopTokensAndMaxTokensAreEachRequestsOwn()
    {
        using var engine = BatchEngine.Start(Model, new BatchEngineOptions { Slots = 3 });
        int[] prompt = [5, 6, 7];
        var free = Solo(prompt, Greedy with { MaxNewTokens = 10 }).Tokens;
        int at = Enumerable.Range(1, 8).First(j => !free[..j].Contains(free[j]));
        var stopping = engine.Submit(prompt, Greedy with { MaxNewTokens = 10, StopTokenIds = [free[at]] });
        var limited = engine.Submit(prompt, Greedy with { MaxNewTokens = 2 });
        var nothing = engine.Submit(prompt, Greedy with { MaxNewTokens = 0 });
        CollectionAssert.AreEqual(free[..(at + 1)], await Read(stopping));
        Assert.AreEqual(FinishReason.StopToken, stopping.FinishReason);
        CollectionAssert.AreEqual(free[..2], await Read(limited));
        Assert.AreEqual(FinishReason.MaxNewTokens, limited.FinishReason);
        Assert.IsEmpty(await Read(nothing));
        Assert.AreEqual(FinishReason.MaxNewTokens, nothing.FinishReason);
    }

    [TestMethod]
    public async Task SlotFillsAtItsLengthAndBadPromptsAreRefused()
    {
        using var engine = BatchEngine.Start(Model, new BatchEngineOptions { Slots = 2, SlotTokens = 10 });
        var request = engine.Submit([1, 2, 3, 4], Greedy with { MaxNewTokens = 50 });
        Assert.HasCount(6, await Read(request));
        Assert.AreEqual(FinishReason.ContextFull, request.FinishReason);
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => engine.Submit(Enumerable.Range(0, 10).ToArray(), Greedy)).Message, "holds 10 tokens");
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => engine.Submit([1, 53], Greedy)).Message, "token id 53");
        Assert.AreEqual(2L * 2 * 2 * 4 * 10 * 8 * sizeof(float), engine.CacheBytes, "layers × (key, value) × slots × heads × slot tokens × head size");
    }

    [TestMethod]
    public void PortableGraphIsRefusedWithWhatToDo()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 102);
        using var tmp = TestPaths.NewTemp();
        using var portable = GptModel.Load(TestModels.Export(weights, tmp));
        Assert.IsFalse(BatchEngine.Supports(portable));
        var e = Assert.ThrowsExactly<OnnxGptException>(() => BatchEngine.Start(portable));
        StringAssert.Contains(e.Message, "--graph fused");
        StringAssert.Contains(e.Message, "one Generator per request");
    }

    [TestMethod]
    public async Task SteadyStateDecodingAllocatesLittleOnTheEnginesThread()
    {
        using var engine = BatchEngine.Start(Model, new BatchEngineOptions { Slots = 4, DecodeText = false });
        var requests = Enumerable.Range(0, 4).Select(i => engine.Submit([i + 1, i + 2], Greedy with { MaxNewTokens = 50 })).ToArray();
        await Task.WhenAll(requests.Select(Read));
        var stats = engine.GetStatistics();
        Console.WriteLine($"engine: {stats.ManagedBytesPerToken:F1} managed bytes per token in steady state, {stats.Steps} steps, {stats.GeneratedTokens} tokens");
        Assert.IsLessThan(64.0, stats.ManagedBytesPerToken, $"{stats.ManagedBytesPerToken:F1} bytes per token on the engine's thread");
    }

    [TestMethod]
    public async Task TimelineSaysWhereTheFirstTokenWent()
    {
        using var engine = BatchEngine.Start(Model, new BatchEngineOptions { Slots = 2 });
        var alone = engine.Submit([1, 2, 3], Greedy with { MaxNewTokens = 2 });
        await Read(alone);
        var t = alone.Timeline;
        long[] order = [t.Submitted, t.Placed, t.PromptStarted, t.PromptFed, t.FirstToken];
        for (int i = 1; i < order.Length; i++)
        {
            Assert.IsGreaterThanOrEqualTo(order[i - 1], order[i], $"step {i} of the timeline comes before step {i - 1}: {t}");
        }

        Assert.IsGreaterThan(0L, t.Submitted);
        var parts = t.WaitedForSlot + t.WaitedForRun + t.PromptRuns + t.Sampling;
        Assert.IsLessThan(1.0, Math.Abs((t.TimeToFirstToken - parts).TotalMicroseconds), $"the parts add up to {parts}, not {t.TimeToFirstToken}");

        // Submitted while another decodes: the run then in flight began before it (or none was going on).
        var decoding = engine.Submit([4, 5], Greedy with { MaxNewTokens = 40 }, Slow);
        await WaitForTokens(decoding, 3);
        var late = engine.Submit([6, 7, 8], Greedy with { MaxNewTokens = 2 });
        await Read(late);
        Assert.IsTrue(late.Timeline.RunInFlightSince == 0 || late.Timeline.RunInFlightSince <= late.Timeline.Submitted, late.Timeline.ToString());
        Assert.IsGreaterThan(0L, late.Timeline.FirstToken);
        decoding.Cancel();   // cleanup: on a busy machine it may have finished meanwhile, so either ending will do
        await decoding.Completion.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    /// <summary>A logits processor that changes nothing but takes 2 ms a token, so a request is still decoding when the test acts.</summary>
    private static void Slow(ReadOnlySpan<int> tokens, Span<float> logits) => Thread.Sleep(2);

    /// <summary>Waits until the request has generated <paramref name="count"/> tokens (without reading them).</summary>
    internal static async Task WaitForTokens(BatchRequest request, int count)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (request.GeneratedTokens < count)
        {
            Assert.IsLessThan(30.0, clock.Elapsed.TotalSeconds, $"the request generated {request.GeneratedTokens} tokens in 30 s, not {count}");
            Assert.IsFalse(request.Completion.IsCompleted, $"the request ended after {request.GeneratedTokens} tokens, before {count}");
            await Task.Delay(1);
        }
    }

    /// <summary>A request's tokens, read to the end.</summary>
    internal static async Task<int[]> Read(BatchRequest request)
    {
        var tokens = new List<int>();
        await foreach (var token in request.ReadTokensAsync())
        {
            tokens.Add(token.TokenId);
        }

        return [.. tokens];
    }

    /// <summary>The tokens and each step's logits of the prompt run alone on a generator.</summary>
    private static (int[] Tokens, float[][] Logits) Solo(int[] prompt, GenerationOptions options)
    {
        using var generator = Model.CreateGenerator(options);
        generator.Append(prompt);
        var logits = new List<float[]>();
        while (!generator.IsDone)
        {
            logits.Add(generator.GetNextTokenLogits(0).ToArray());
            generator.GenerateNextToken();
        }

        return (generator.GetSequence(0)[prompt.Length..].ToArray(), [.. logits]);
    }

    private static float MaxDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.AreEqual(a.Length, b.Length);
        float max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            float d = Math.Abs(a[i] - b[i]);
            max = float.IsNaN(d) ? float.PositiveInfinity : Math.Max(max, d);
        }

        return max;
    }
}

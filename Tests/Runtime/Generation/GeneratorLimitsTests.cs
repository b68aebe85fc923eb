using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>Bad input, the context limit, empty prompts, stops, cancellation.</summary>
[TestClass]
public sealed class GeneratorLimitsTests
{
    private static readonly GenerationOptions Greedy = new() { DoSample = false, MaxNewTokens = 8 };

    [TestMethod]
    public void TokenOutsideVocabularyNamesIdAndVocabularySize()
    {
        using var fixture = Fixture.Create(TestWeights.Small());
        using var generator = fixture.Model.CreateGenerator(Greedy);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => generator.Append([1, 2, 53]));
        StringAssert.Contains(e.Message, "token id 53");
        StringAssert.Contains(e.Message, "vocabulary of 53 tokens");
        e = Assert.ThrowsExactly<OnnxGptException>(() => generator.AppendBatch([[1], [-4, 2]]));
        StringAssert.Contains(e.Message, "row 1");
        StringAssert.Contains(e.Message, "token id -4");
        Assert.AreEqual(0, generator.BatchSize, "a refused append leaves the generator untouched");
    }

    [TestMethod]
    public void PromptLongerThanContextGivesBothNumbersUnlessLeftTruncationIsChosen()
    {
        using var fixture = Fixture.Create(TestWeights.Small());       // context 24
        var prompt = Enumerable.Range(0, 30).Select(i => i % 53).ToArray();
        using (var refusing = fixture.Model.CreateGenerator(Greedy))
        {
            var e = Assert.ThrowsExactly<OnnxGptException>(() => refusing.Append(prompt));
            StringAssert.Contains(e.Message, "30 tokens");
            StringAssert.Contains(e.Message, "context is 24 tokens");
        }

        using var cutting = fixture.Model.CreateGenerator(Greedy, new GeneratorOptions { Truncation = PromptTruncation.Left });
        cutting.Append(prompt);
        // Room for min(8, 24 / 2) = 8 new tokens: the last 16 prompt tokens are kept.
        Assert.AreEqual(14, cutting.TruncatedTokens);
        CollectionAssert.AreEqual(prompt[14..], cutting.GetSequence(0).ToArray());
        var result = cutting.GenerateAll()[0];
        var expected = TestModels.ReferenceGreedy(fixture.Weights, prompt[14..], 8);
        CollectionAssert.AreEqual(prompt[14..].Concat(expected).ToArray(), result.Ids.ToArray());
    }

    [TestMethod]
    public void GenerationStopsCleanlyAtTheContextLength()
    {
        using var fixture = Fixture.Create(TestWeights.Small());       // context 24
        var prompt = Enumerable.Range(1, 21).ToArray();
        using var generator = fixture.Model.CreateGenerator(Greedy with { MaxNewTokens = 50 });
        generator.Append(prompt);
        var result = generator.GenerateAll()[0];
        Assert.AreEqual(FinishReason.ContextFull, result.FinishReason);
        Assert.AreEqual(24, result.Ids.Count, "the sequence fills the context exactly");
        CollectionAssert.AreEqual(TestModels.ReferenceGreedy(fixture.Weights, prompt, 50), result.NewIds.ToArray());
        Assert.IsLessThanOrEqualTo(24, generator.Cache!.Capacity, "the cache never grows past the context");
        generator.GenerateNextToken();   // done: nothing happens
        Assert.AreEqual(24, generator.GetSequence(0).Length);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => generator.Append([1]));
        StringAssert.Contains(e.Message, "25");
    }

    [TestMethod]
    public void HugeMaxNewTokensStopsAtTheContext()
    {
        using var fixture = Fixture.Create(TestWeights.Small());       // context 24
        using var generator = fixture.Model.CreateGenerator(Greedy with { MaxNewTokens = int.MaxValue });
        generator.AppendBatch([[1, 2, 3], [4]]);
        var results = generator.GenerateAll();
        Assert.AreEqual(24, generator.Cache!.Capacity);
        Assert.AreEqual(FinishReason.ContextFull, results[0].FinishReason);
        Assert.AreEqual(24, results[0].Ids.Count);
        Assert.AreEqual(22, results[1].Ids.Count, "the shorter row had two padding slots");
    }

    [TestMethod]
    public void CacheIsSizedToTheRequestNotTheContext()
    {
        using var fixture = Fixture.Create(TestWeights.Small());       // context 24
        using var generator = fixture.Model.CreateGenerator(Greedy with { MaxNewTokens = 5 });
        generator.Append([1, 2, 3]);
        Assert.AreEqual(8, generator.Cache!.Capacity);
        long perToken = 2L * 2 * 2 * 1 * 2 * 8 * sizeof(float);  // layers × (key, value) × ping-pong × B × H × D × 4 bytes
        Assert.AreEqual(perToken * 8, generator.Cache.AllocatedBytes);
        generator.GenerateAll();
        Assert.AreEqual(8, generator.Cache.Capacity, "no growth while generating within the request");
    }

    [TestMethod]
    public void EmptyPromptStartsFromBosOrIsRefusedWithoutOne()
    {
        var withBos = TestWeights.Small() with { BosTokenId = 50 };
        using (var fixture = Fixture.Create(withBos))
        {
            using var generator = fixture.Model.CreateGenerator(Greedy);
            generator.Append([]);
            var result = generator.GenerateAll()[0];
            CollectionAssert.AreEqual(new[] { 50 }.Concat(TestModels.ReferenceGreedy(fixture.Weights, [50], 8)).ToArray(), result.Ids.ToArray());
        }

        using (var fixture = Fixture.Create(TestWeights.Small()))
        {
            using var generator = fixture.Model.CreateGenerator(Greedy);
            var e = Assert.ThrowsExactly<OnnxGptException>(() => generator.Append([]));
            StringAssert.Contains(e.Message, "empty");
            StringAssert.Contains(e.Message, "bos_token_id");
        }
    }

    [TestMethod]
    public void EachRowStopsOnItsOwnAndFinishedRowsDoNotChange()
    {
        using var fixture = Fixture.Create(TestWeights.Small(heads: 2));
        int[][] prompts = [[5, 6, 7], [9, 10, 11, 12, 13]];
        var row0 = TestModels.ReferenceGreedy(fixture.Weights, prompts[0], 8);
        var row1 = TestModels.ReferenceGreedy(fixture.Weights, prompts[1], 8);
        int stop = row0[2];
        Assert.IsFalse(row1.Contains(stop), "test setup: the stop token must not appear in row 1's continuation");

        using var generator = fixture.Model.CreateGenerator(Greedy with { StopTokenIds = [stop] });
        generator.AppendBatch(prompts);
        int[]? row0AtStop = null;
        while (!generator.IsDone)
        {
            generator.GenerateNextToken();
            if (generator.GetFinishReason(0) != FinishReason.None && row0AtStop is null)
            {
                row0AtStop = generator.GetSequence(0).ToArray();
                Assert.AreEqual(FinishReason.None, generator.GetFinishReason(1), "row 1 goes on");
            }
            else if (row0AtStop is not null)
            {
                Assert.AreEqual(-1, generator.LastTokens[0], "a finished row gets no token");
                CollectionAssert.AreEqual(row0AtStop, generator.GetSequence(0).ToArray(), "a finished row does not change");
            }
        }

        var results = generator.Results();
        Assert.AreEqual(FinishReason.StopToken, results[0].FinishReason);
        CollectionAssert.AreEqual(prompts[0].Concat(row0[..3]).ToArray(), results[0].Ids.ToArray());
        Assert.AreEqual(FinishReason.MaxNewTokens, results[1].FinishReason);
        CollectionAssert.AreEqual(prompts[1].Concat(row1).ToArray(), results[1].Ids.ToArray());
    }

    [TestMethod]
    public void EndOfSequenceStopsARow()
    {
        var config = TestWeights.Small();
        var weights = TestWeights.Random(config, seed: 21);
        int[] prompt = [3, 4, 5];
        var greedy = TestModels.ReferenceGreedy(weights, prompt, 8);
        int eos = greedy[1];
        using var fixture = Fixture.Create(weights, config with { EosTokenId = eos });
        using (var generator = fixture.Model.CreateGenerator(Greedy))
        {
            generator.Append(prompt);
            var result = generator.GenerateAll()[0];
            Assert.AreEqual(FinishReason.EndOfSequence, result.FinishReason);
            Assert.AreEqual(Array.IndexOf(greedy, eos) + 1, result.NewTokens);
            Assert.AreEqual(eos, result.Ids[^1], "the end-of-sequence token is part of the ids");
        }

        using (var ignoring = fixture.Model.CreateGenerator(Greedy, new GeneratorOptions { StopAtEndOfSequence = false }))
        {
            ignoring.Append(prompt);
            Assert.AreEqual(FinishReason.MaxNewTokens, ignoring.GenerateAll()[0].FinishReason);
        }
    }

    [TestMethod]
    public async Task StreamingYieldsEachTokenAndHonoursCancellationBetweenSteps()
    {
        using var fixture = Fixture.Create(TestWeights.Small());
        using var generator = fixture.Model.CreateGenerator(Greedy with { MaxNewTokens = 20 });
        int[] prompt = [1, 2, 3];
        generator.Append(prompt);
        using var cancel = new CancellationTokenSource();
        var seen = new List<int>();
        await Assert.ThrowsAsync<OperationCanceledException>(async () =>
        {
            await foreach (var token in generator.StreamAsync(cancel.Token))
            {
                Assert.AreEqual(0, token.Row);
                seen.Add(token.TokenId);
                if (seen.Count == 4)
                {
                    cancel.Cancel();
                }
            }
        });

        Assert.AreEqual(4, seen.Count, "no step runs after cancellation");
        CollectionAssert.AreEqual(TestModels.ReferenceGreedy(fixture.Weights, prompt, 4), seen);
        Assert.IsFalse(generator.IsDone);

        // The generator can carry on afterwards.
        var rest = new List<GeneratedToken>();
        await foreach (var token in generator.StreamAsync())
        {
            rest.Add(token);
        }

        Assert.AreEqual(16, rest.Count);
        Assert.AreEqual(FinishReason.MaxNewTokens, rest[^1].FinishReason);
        CollectionAssert.AreEqual(TestModels.ReferenceGreedy(fixture.Weights, prompt, 20), seen.Concat(rest.Select(t => t.TokenId)).ToList());
    }

    [TestMethod]
    public void BatchSizeIsFixedByTheFirstAppend()
    {
        using var fixture = Fixture.Create(TestWeights.Small());
        using var generator = fixture.Model.CreateGenerator(Greedy);
        generator.AppendBatch([[1, 2], [3]]);
        var e = Assert.ThrowsExactly<ArgumentException>(() => generator.Append([4]));
        StringAssert.Contains(e.Message, "batch of 2");
        using var empty = fixture.Model.CreateGenerator(Greedy);
        Assert.ThrowsExactly<InvalidOperationException>(empty.GenerateNextToken);
    }

    [TestMethod]
    public void DisposedGeneratorAndModelRefuseUse()
    {
        using var fixture = Fixture.Create(TestWeights.Small());
        var generator = fixture.Model.CreateGenerator(Greedy);
        generator.Append([1, 2]);
        generator.Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(generator.GenerateNextToken);

        var live = fixture.Model.CreateGenerator(Greedy);
        live.Append([1, 2]);
        fixture.Model.Dispose();
        Assert.IsTrue(fixture.Model.IsDisposed);
        Assert.ThrowsExactly<ObjectDisposedException>(live.GenerateNextToken);
        Assert.ThrowsExactly<ObjectDisposedException>(() => fixture.Model.CreateGenerator());
        live.Dispose();
    }

    /// <summary>A small exported model in a temp folder.</summary>
    private sealed class Fixture : IDisposable
    {
        private readonly TempFolder _tmp = TestPaths.NewTemp();

        private Fixture(GptWeights weights)
        {
            Weights = weights;
            Model = GptModel.Load(TestModels.Export(weights, _tmp));
        }

        public GptWeights Weights { get; }

        public GptModel Model { get; }

        public static Fixture Create(GptConfig config) => new(TestWeights.Random(config, seed: 20));

        /// <summary>The same tensors under another config (e.g. with an eos id).</summary>
        public static Fixture Create(GptWeights weights, GptConfig config) =>
            new(new GptWeights(config, weights.Names.ToDictionary(n => n, n => weights[n])));

        public void Dispose()
        {
            Model.Dispose();
            _tmp.Dispose();
        }
    }
}

using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>The generator against the reference forward pass: greedy tokens, the cache, rewinding, batching, threads.</summary>
[TestClass]
public sealed class GeneratorTests
{
    private static readonly GenerationOptions Greedy = new() { DoSample = false, MaxNewTokens = 8 };

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void GreedyBatchWithPaddingEqualsReferenceArgmax(bool useCache)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2), seed: 11);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp));
        int[][] prompts = [[5, 17, 3, 52, 9], [8, 41, 2]];
        using var generator = model.CreateGenerator(Greedy, new GeneratorOptions { UseKvCache = useCache });
        generator.AppendBatch(prompts);
        var results = generator.GenerateAll();

        for (int b = 0; b < prompts.Length; b++)
        {
            var expected = TestModels.ReferenceGreedy(weights, prompts[b], Greedy.MaxNewTokens);
            CollectionAssert.AreEqual(prompts[b].Concat(expected).ToArray(), results[b].Ids.ToArray(),
                $"row {b}: expected {string.Join(",", expected)}, got {string.Join(",", results[b].NewIds)}");
            Assert.AreEqual(prompts[b].Length, results[b].PromptLength);
            Assert.AreEqual(FinishReason.MaxNewTokens, results[b].FinishReason);
        }
    }

    [TestMethod]
    public void CachedLogitsEqualFullRecomputeAtEveryStep()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 4, bias: false, tied: false), seed: 12);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp));
        var options = Greedy with { MaxNewTokens = 12 };
        using var cached = model.CreateGenerator(options);
        using var full = model.CreateGenerator(options, new GeneratorOptions { UseKvCache = false });
        int[][] prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10]];
        cached.AppendBatch(prompts);
        full.AppendBatch(prompts);
        Assert.IsTrue(cached.UsesKvCache);
        Assert.IsFalse(full.UsesKvCache);
        int steps = 0;
        while (!cached.IsDone)
        {
            for (int b = 0; b < 2; b++)
            {
                float diff = MaxDiff(cached.GetNextTokenLogits(b), full.GetNextTokenLogits(b));
                Assert.IsLessThanOrEqualTo(1e-4f, diff, $"step {steps}, row {b}: cached logits differ from full recompute by {diff}");
            }

            cached.GenerateNextToken();
            full.GenerateNextToken();
            CollectionAssert.AreEqual(full.LastTokens.ToArray(), cached.LastTokens.ToArray(), $"step {steps}");
            steps++;
        }

        Assert.IsTrue(full.IsDone);
        Assert.AreEqual(12, steps);
        for (int b = 0; b < 2; b++)
        {
            CollectionAssert.AreEqual(full.GetSequence(b).ToArray(), cached.GetSequence(b).ToArray());
        }
    }

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void RewindThenContinueEqualsUninterruptedRun(bool useCache)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2), seed: 13);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp));
        var options = Greedy with { MaxNewTokens = 10 };
        var settings = new GeneratorOptions { UseKvCache = useCache };
        int[][] prompts = [[7, 3, 9, 1], [2, 44]];

        using var straight = model.CreateGenerator(options, settings);
        straight.AppendBatch(prompts);
        var expected = straight.GenerateAll();

        using var rewound = model.CreateGenerator(options, settings);
        rewound.AppendBatch(prompts);
        for (int i = 0; i < 6; i++)
        {
            rewound.GenerateNextToken();
        }

        int cachedBefore = rewound.Cache!.Length;
        rewound.RewindTo(4 + 3);                 // the prompt slots (4) and 3 generated tokens
        Assert.AreEqual(7, rewound.Length);
        Assert.AreEqual(useCache ? 6 : 0, rewound.Cache.Length, "the cache keeps the prefix but the last kept token, which is fed again");
        Assert.AreEqual(useCache ? 4 + 5 : 0, cachedBefore);
        Assert.IsFalse(rewound.IsDone);
        var results = rewound.GenerateAll();
        for (int b = 0; b < 2; b++)
        {
            CollectionAssert.AreEqual(expected[b].Ids.ToArray(), results[b].Ids.ToArray(), $"row {b}");
            Assert.AreEqual(FinishReason.MaxNewTokens, results[b].FinishReason);
        }

        // Rewinding into the prompt and appending other tokens continues from the kept prefix: row 0 keeps [7, 3];
        // row 1 was left-padded by two, so it keeps nothing and starts afresh from its new tokens.
        rewound.RewindTo(2);
        CollectionAssert.AreEqual(new[] { 7, 3 }, rewound.GetSequence(0).ToArray());
        Assert.AreEqual(0, rewound.GetSequence(1).Length);
        rewound.AppendBatch([[30, 31], [32, 33]]);
        var branched = rewound.GenerateAll();
        int[][] branchedPrompts = [[7, 3, 30, 31], [32, 33]];
        for (int b = 0; b < 2; b++)
        {
            var want = branchedPrompts[b].Concat(TestModels.ReferenceGreedy(weights, branchedPrompts[b], options.MaxNewTokens)).ToArray();
            CollectionAssert.AreEqual(want, branched[b].Ids.ToArray(), $"branched row {b}");
            Assert.AreEqual(branchedPrompts[b].Length, branched[b].PromptLength);
        }
    }

    [TestMethod]
    public void PromptFedInChunksEqualsOneStep()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2), seed: 15);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp));
        int[][] prompts = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [12, 13, 14, 15]];
        using var whole = model.CreateGenerator(Greedy);
        using var chunked = model.CreateGenerator(Greedy, new GeneratorOptions { PrefillChunkTokens = 3 });
        whole.AppendBatch(prompts);
        chunked.AppendBatch(prompts);
        for (int b = 0; b < 2; b++)
        {
            float diff = MaxDiff(whole.GetNextTokenLogits(b), chunked.GetNextTokenLogits(b));
            Assert.IsLessThanOrEqualTo(1e-4f, diff, $"row {b}: chunked prompt logits differ by {diff}");
        }

        Assert.AreEqual(11, chunked.Cache!.Length, "every prompt token is cached");
        var a = whole.GenerateAll();
        var c = chunked.GenerateAll();
        for (int b = 0; b < 2; b++)
        {
            CollectionAssert.AreEqual(a[b].Ids.ToArray(), c[b].Ids.ToArray(), $"row {b}");
        }
    }

    [TestMethod]
    public void ManyGeneratorsOnOneModelFromSeveralThreadsMatchSequentialRuns()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2), seed: 14);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp));
        var options = Greedy with { MaxNewTokens = 10 };
        var prompts = Enumerable.Range(0, 8).Select(i => new[] { i + 1, (i * 7) % 53, (i * 13) % 53 }).ToArray();

        var sequential = prompts.Select(p => Run(model, p)).ToArray();
        var parallel = new int[prompts.Length][];
        Parallel.For(0, prompts.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => parallel[i] = Run(model, prompts[i]));

        for (int i = 0; i < prompts.Length; i++)
        {
            CollectionAssert.AreEqual(sequential[i], parallel[i], $"prompt {i}");
        }

        int[] Run(GptModel m, int[] prompt)
        {
            using var g = m.CreateGenerator(options);
            g.Append(prompt);
            return [.. g.GenerateAll()[0].Ids];
        }
    }

    private static float MaxDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.AreEqual(a.Length, b.Length);
        float max = 0;
        for (int i = 0; i < a.Length; i++)
        {
            max = Math.Max(max, Math.Abs(a[i] - b[i]));
        }

        return max;
    }
}

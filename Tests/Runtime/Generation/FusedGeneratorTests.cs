using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter.Reference;
using OnnxGpt.Exporter;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Exporter.Onnx;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>
/// The generator on the fused graph: one cache buffer per tensor written in place, rows of different lengths kept
/// right-padded at their own lengths, against the reference forward pass.
/// </summary>
[TestClass]
public sealed class FusedGeneratorTests
{
    private const float Tolerance = 1e-4f;
    private static readonly GenerationOptions Greedy = new() { DoSample = false, MaxNewTokens = 8 };
    private static readonly ExportOptions Fused = new() { Graph = new GraphOptions { Flavor = GraphFlavor.Fused } };

    [TestMethod]
    [DataRow(2, true)]
    [DataRow(4, true)]
    [DataRow(2, false)]
    public void GreedyBatchOfUnequalRowsEqualsReferenceArgmax(int heads, bool useCache)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: heads, width: 32), seed: 81);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: Fused));
        Assert.IsTrue(model.Signature.IsFused);
        Assert.IsTrue(model.Signature.HasLogitsToKeep);
        int[][] prompts = [[5, 17, 3, 52, 9], [8, 41, 2], [30]];
        using var generator = model.CreateGenerator(Greedy, new GeneratorOptions { UseKvCache = useCache });
        generator.AppendBatch(prompts);
        Assert.IsTrue(generator.Cache!.IsInPlace, "the fused graph's cache is written in place");
        var results = generator.GenerateAll();

        for (int b = 0; b < prompts.Length; b++)
        {
            var expected = TestModels.ReferenceGreedy(weights, prompts[b], Greedy.MaxNewTokens);
            CollectionAssert.AreEqual(prompts[b].Concat(expected).ToArray(), results[b].Ids.ToArray(),
                $"row {b}: expected {string.Join(",", expected)}, got {string.Join(",", results[b].NewIds)}");
            Assert.AreEqual(FinishReason.MaxNewTokens, results[b].FinishReason);
        }

        // The left-padded view of the sequence is unchanged: slots count the longest row.
        Assert.AreEqual(5 + 8, generator.Length);
    }

    [TestMethod]
    [DataRow(false, true)]
    [DataRow(false, false)]
    [DataRow(true, true)]
    [DataRow(true, false)]
    public void RowLeftEmptyInALaterAppendContinuesFromItsOwnLastToken(bool fused, bool useCache)
    {
        // Row 1 gets nothing in the second append while row 0 gets two tokens: row 1's next token must still come
        // from its own last token, not from the padding the portable layout puts in its place.
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: 32), seed: 86);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: fused ? Fused : new ExportOptions()));
        var options = Greedy with { MaxNewTokens = 4 };
        using var generator = model.CreateGenerator(options, new GeneratorOptions { UseKvCache = useCache });
        generator.AppendBatch([[5, 17, 3], [8, 41]]);
        if (useCache)
        {
            generator.GetNextTokenLogits(0);   // the first append runs on its own, so the second one is a later step
        }

        generator.AppendBatch([[9, 12], []]);
        using (var alone = model.CreateGenerator(options))
        {
            alone.Append([8, 41]);
            var expectedLogits = alone.GetNextTokenLogits(0).ToArray();
            var actualLogits = generator.GetNextTokenLogits(1).ToArray();
            float worst = expectedLogits.Zip(actualLogits, (x, y) => MathF.Abs(x - y)).Max();
            Assert.IsLessThanOrEqualTo(Tolerance, worst, $"row 1's logits after an empty append differ by {worst} from the row alone");
        }

        var results = generator.GenerateAll();

        int[][] whole = [[5, 17, 3, 9, 12], [8, 41]];
        for (int b = 0; b < whole.Length; b++)
        {
            var expected = TestModels.ReferenceGreedy(weights, whole[b], options.MaxNewTokens);
            CollectionAssert.AreEqual(whole[b].Concat(expected).ToArray(), results[b].Ids.ToArray(),
                $"row {b}: expected {string.Join(",", expected)}, got {string.Join(",", results[b].NewIds)}");
        }
    }

    [TestMethod]
    public void CachedLogitsEqualReferenceAndFullRecomputeAtEveryStep()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 4, width: 32, bias: false, tied: false), seed: 82);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: Fused));
        var options = Greedy with { MaxNewTokens = 10 };
        using var cached = model.CreateGenerator(options);
        using var full = model.CreateGenerator(options, new GeneratorOptions { UseKvCache = false });
        int[][] prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10]];
        cached.AppendBatch(prompts);
        full.AppendBatch(prompts);
        int steps = 0;
        while (!cached.IsDone)
        {
            for (int b = 0; b < 2; b++)
            {
                var sequence = cached.GetSequence(b).ToArray().Select(t => (long)t).ToArray();
                var reference = ReferenceGpt.Logits(weights, [sequence])[0][^1];
                float toReference = MaxDiff(reference, cached.GetNextTokenLogits(b));
                float toFull = MaxDiff(full.GetNextTokenLogits(b), cached.GetNextTokenLogits(b));
                Assert.IsLessThanOrEqualTo(Tolerance, toReference, $"step {steps}, row {b}: cached logits differ from the reference by {toReference}");
                Assert.IsLessThanOrEqualTo(Tolerance, toFull, $"step {steps}, row {b}: cached logits differ from full recompute by {toFull}");
            }

            cached.GenerateNextToken();
            full.GenerateNextToken();
            CollectionAssert.AreEqual(full.LastTokens.ToArray(), cached.LastTokens.ToArray(), $"step {steps}");
            steps++;
        }

        Assert.AreEqual(10, steps);
        Assert.AreEqual(0, full.Cache!.Length, "without the cache nothing is kept between steps");
    }

    [TestMethod]
    public void CacheIsOneBufferPerTensorWithItsOwnLengthPerRow()
    {
        var config = TestWeights.Small(heads: 4, width: 32);   // 2 layers, head size 8
        var weights = TestWeights.Random(config, seed: 83);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: Fused));
        using var generator = model.CreateGenerator(Greedy with { MaxNewTokens = 4 });
        generator.AppendBatch([[1, 2, 3, 4, 5, 6], [7, 8]]);
        generator.GenerateNextToken();

        var cache = generator.Cache!;
        Assert.IsTrue(cache.IsInPlace);
        Assert.AreEqual(10, cache.Capacity, "the prompt's 6 slots and 4 new tokens");
        long perTensor = 2L * 4 * 10 * 8 * sizeof(float);   // B·H·Cap·D floats, one buffer (not two)
        Assert.AreEqual(2 * config.Layers * perTensor, cache.AllocatedBytes);
        Assert.AreEqual(4, cache.TensorCount);
        Assert.AreEqual(2 * 4 * 10 * 8, cache.GetTensor(0).Length, "a tensor is the whole (B, H, Cap, D) buffer");
        Assert.AreEqual(6, cache.GetRowLength(0));
        Assert.AreEqual(2, cache.GetRowLength(1), "the short row's tokens start at position 0, no padding before them");

        generator.GenerateNextToken();
        Assert.AreEqual(7, cache.GetRowLength(0));
        Assert.AreEqual(3, cache.GetRowLength(1));
        Assert.AreEqual(7, cache.Length);

        // Row 1's keys and values are the reference's for its three tokens, at positions 0-2 of each head.
        var expected = ReferenceKeys(weights, generator.GetSequence(1)[..3].ToArray(), layer: 0);
        var keys = cache.GetTensor(0);
        float max = 0;
        for (int h = 0; h < 4; h++)
        {
            for (int p = 0; p < 3; p++)
            {
                for (int d = 0; d < 8; d++)
                {
                    max = Math.Max(max, Math.Abs(expected[h][p][d] - keys[((1 * 4 + h) * 10 + p) * 8 + d]));
                }
            }
        }

        Assert.IsLessThanOrEqualTo(Tolerance, max, $"row 1 layer 0 keys differ from the reference by {max}");
    }

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void RewindThenContinueAndAppendSeveralTokensToRowsOfDifferentLengths(bool useCache)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: 32), seed: 84);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: Fused));
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

        rewound.RewindTo(4 + 3);                 // the prompt slots (4) and 3 generated tokens
        Assert.AreEqual(7, rewound.Length);
        if (useCache)
        {
            // Rewinding only sets lengths back: each row keeps all but its last token, which is fed again.
            Assert.AreEqual(6, rewound.Cache!.GetRowLength(0));
            Assert.AreEqual(4, rewound.Cache.GetRowLength(1));
        }

        var results = rewound.GenerateAll();
        for (int b = 0; b < 2; b++)
        {
            CollectionAssert.AreEqual(expected[b].Ids.ToArray(), results[b].Ids.ToArray(), $"row {b}");
        }

        // Rewind into the prompt and append several tokens to rows that still hold different numbers of tokens:
        // GroupQueryAttention takes several new tokens after a past only for one row, so rows go one at a time.
        rewound.RewindTo(3);
        CollectionAssert.AreEqual(new[] { 7, 3, 9 }, rewound.GetSequence(0).ToArray());
        CollectionAssert.AreEqual(new[] { 2 }, rewound.GetSequence(1).ToArray());
        rewound.AppendBatch([[30, 31, 32], [33, 34]]);
        var branched = rewound.GenerateAll();
        int[][] branchedPrompts = [[7, 3, 9, 30, 31, 32], [2, 33, 34]];
        for (int b = 0; b < 2; b++)
        {
            var want = branchedPrompts[b].Concat(TestModels.ReferenceGreedy(weights, branchedPrompts[b], options.MaxNewTokens)).ToArray();
            CollectionAssert.AreEqual(want, branched[b].Ids.ToArray(), $"branched row {b}");
            Assert.AreEqual(branchedPrompts[b].Length, branched[b].PromptLength);
        }

        // Appending to one row only (the other row appends nothing) continues both correctly.
        rewound.RewindTo(rewound.Length - 5);
        var kept = Enumerable.Range(0, 2).Select(b => rewound.GetSequence(b).ToArray()).ToArray();
        rewound.AppendBatch([[11, 12], []]);
        var one = rewound.GenerateAll();
        int[][] onePrompts = [[.. kept[0], 11, 12], kept[1]];
        for (int b = 0; b < 2; b++)
        {
            var want = onePrompts[b].Concat(TestModels.ReferenceGreedy(weights, onePrompts[b], options.MaxNewTokens)).ToArray();
            CollectionAssert.AreEqual(want, one[b].Ids.ToArray(), $"one-row append, row {b}");
        }
    }

    [TestMethod]
    public void PromptFedInChunksEqualsOneStep()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: 32), seed: 85);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: Fused));
        int[][] prompts = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [12, 13, 14, 15]];
        using var whole = model.CreateGenerator(Greedy);
        using var chunked = model.CreateGenerator(Greedy, new GeneratorOptions { PrefillChunkTokens = 3 });
        whole.AppendBatch(prompts);
        chunked.AppendBatch(prompts);
        for (int b = 0; b < 2; b++)
        {
            float diff = MaxDiff(whole.GetNextTokenLogits(b), chunked.GetNextTokenLogits(b));
            Assert.IsLessThanOrEqualTo(Tolerance, diff, $"row {b}: chunked prompt logits differ by {diff}");
        }

        Assert.AreEqual(11, chunked.Cache!.GetRowLength(0), "every prompt token is cached");
        Assert.AreEqual(4, chunked.Cache.GetRowLength(1));
        var a = whole.GenerateAll();
        var c = chunked.GenerateAll();
        for (int b = 0; b < 2; b++)
        {
            CollectionAssert.AreEqual(a[b].Ids.ToArray(), c[b].Ids.ToArray(), $"row {b}");
            var expected = TestModels.ReferenceGreedy(weights, prompts[b], Greedy.MaxNewTokens);
            CollectionAssert.AreEqual(prompts[b].Concat(expected).ToArray(), c[b].Ids.ToArray(), $"row {b} against the reference");
        }
    }

    [TestMethod]
    public void EachRowStopsOnItsOwnAndFinishedRowsDoNotChange()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: 32), seed: 92);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: Fused));
        int[][] prompts = [[5, 6, 7], [9, 10, 11, 12, 13]];
        var row0 = TestModels.ReferenceGreedy(weights, prompts[0], 8);
        var row1 = TestModels.ReferenceGreedy(weights, prompts[1], 8);
        // Stop on the first of row 0's tokens (after its first) that appears nowhere before it nor in row 1's.
        int at = Enumerable.Range(1, 6).First(j => !row0[..j].Contains(row0[j]) && !row1.Contains(row0[j]));
        int stop = row0[at];

        using var generator = model.CreateGenerator(Greedy with { StopTokenIds = [stop] });
        generator.AppendBatch(prompts);
        var results = generator.GenerateAll();
        CollectionAssert.AreEqual(prompts[0].Concat(row0[..(at + 1)]).ToArray(), results[0].Ids.ToArray());
        Assert.AreEqual(FinishReason.StopToken, results[0].FinishReason);
        CollectionAssert.AreEqual(prompts[1].Concat(row1).ToArray(), results[1].Ids.ToArray());
        Assert.AreEqual(FinishReason.MaxNewTokens, results[1].FinishReason);
        Assert.AreEqual(3 + at + 1, generator.Cache!.GetRowLength(0), "the finished row's cache holds its tokens, and no more");
    }

    [TestMethod]
    public void Int4ExportRunsThroughTheGeneratorAsOnnxRuntimeStepsIt()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: 64), seed: 87);
        using var tmp = TestPaths.NewTemp();
        var options = new GraphOptions { Flavor = GraphFlavor.Fused, Quantization = WeightQuantization.Int4 };
        string folder = TestModels.Export(weights, tmp, options: new ExportOptions { Graph = options });
        using var model = GptModel.Load(folder);
        int[][] prompts = [[3, 14, 15, 9, 26], [5, 35]];
        using var generator = model.CreateGenerator(Greedy);
        generator.AppendBatch(prompts);

        // The logits are the reference's on the dequantized weights, to the error of int8 activations (see FusedGraphTests).
        var dequantized = FusedGraphTests.Dequantized(weights, 4, options.BlockSize);
        for (int b = 0; b < 2; b++)
        {
            var expected = ReferenceGpt.Logits(dequantized, [prompts[b].Select(t => (long)t).ToArray()])[0][^1];
            float scale = expected.Max(v => Math.Abs(v));
            float diff = MaxDiff(expected, generator.GetNextTokenLogits(b));
            Assert.IsLessThanOrEqualTo(0.02f * scale, diff, $"row {b}: int4 logits differ from the dequantized reference by {diff} (scale {scale})");
        }

        var results = generator.GenerateAll();
        for (int b = 0; b < 2; b++)
        {
            var expected = OrtGreedy(Path.Combine(folder, ModelFolder.ModelFile), prompts[b], Greedy.MaxNewTokens);
            CollectionAssert.AreEqual(expected, results[b].NewIds.ToArray(), $"row {b}: int4 greedy tokens against ONNX Runtime stepped directly");
        }
    }

    /// <summary>Greedy argmax with the file stepped through ONNX Runtime directly, one row, cache in place.</summary>
    private static int[] OrtGreedy(string modelPath, int[] prompt, int newTokens)
    {
        using var ort = new FusedOrtGpt(modelPath, batch: 1, capacity: prompt.Length + newTokens);
        var produced = new List<int>();
        long[] ids = [.. prompt.Select(t => (long)t)];
        int length = 0;
        for (int i = 0; i < newTokens; i++)
        {
            long[] mask = Enumerable.Repeat(1L, length + ids.Length).ToArray();
            long[] positions = Enumerable.Range(length, ids.Length).Select(p => (long)p).ToArray();
            float[] logits = ort.Run([ids], [mask], [positions], logitsToKeep: 1);
            int best = 0;
            for (int v = 1; v < logits.Length; v++)
            {
                best = logits[v] > logits[best] ? v : best;
            }

            length += ids.Length;
            produced.Add(best);
            ids = [best];
        }

        return [.. produced];
    }

    /// <summary>The reference's layer keys (H, P, D) for a sequence: ln_1 of the embeddings through c_attn's key part.</summary>
    private static float[][][] ReferenceKeys(GptWeights weights, int[] tokens, int layer)
    {
        Assert.AreEqual(0, layer, "only layer 0's keys are computed here");
        var c = weights.Config;
        int width = c.Width, heads = c.Heads, d = c.HeadSize;
        var wte = weights[TensorNames.Wte];
        var wpe = weights[TensorNames.Wpe];
        string prefix = TensorNames.Block(0);
        var gain = weights[prefix + "ln_1.weight"].Data;
        var bias = c.Bias ? weights[prefix + "ln_1.bias"].Data : null;
        var w = weights[prefix + "attn.c_attn.weight"].Data;             // [C, 3C]
        var wb = c.Bias ? weights[prefix + "attn.c_attn.bias"].Data : null;
        var keys = new float[heads][][];
        for (int h = 0; h < heads; h++)
        {
            keys[h] = new float[tokens.Length][];
        }

        for (int p = 0; p < tokens.Length; p++)
        {
            var x = new double[width];
            for (int i = 0; i < width; i++)
            {
                x[i] = wte.Data[tokens[p] * width + i] + wpe.Data[p * width + i];
            }

            double mean = x.Average(), variance = x.Select(v => (v - mean) * (v - mean)).Average();
            double inv = 1 / Math.Sqrt(variance + c.LayerNormEpsilon);
            var n = x.Select((v, i) => (v - mean) * inv * gain[i] + (bias?[i] ?? 0)).ToArray();
            for (int h = 0; h < heads; h++)
            {
                keys[h][p] = new float[d];
                for (int j = 0; j < d; j++)
                {
                    int column = width + h * d + j;              // q | k | v: the key part starts at C
                    double sum = wb?[column] ?? 0;
                    for (int i = 0; i < width; i++)
                    {
                        sum += n[i] * w[i * 3 * width + column];
                    }

                    keys[h][p][j] = (float)sum;
                }
            }
        }

        return keys;
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

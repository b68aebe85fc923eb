using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter.Reference;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Exporter.Onnx;

/// <summary>
/// The Llama recipe (RMSNorm, rotary positions in both pairings, grouped-query attention, SwiGLU) in both graph
/// flavours equals the double-precision reference, for a padded batch prompt and for cached decoding.
/// </summary>
[TestClass]
public sealed class LlamaGraphTests
{
    private const float Tolerance = 1e-4f;

    /// <summary>
    /// heads, key/value heads, interleaved rotary pairs, tied head. Width 32: 4 heads of 8 (the fused graph rotates
    /// before GroupQueryAttention), 2 heads of 16 (GroupQueryAttention rotates them itself).
    /// </summary>
    public static IEnumerable<object[]> Configurations =>
    [
        [4, 2, true, true],
        [4, 4, false, false],
        [4, 1, true, false],
        [2, 1, true, true],
        [2, 2, false, false],
    ];

    [TestMethod]
    [DynamicData(nameof(Configurations))]
    public void PortableBatchWithLeftPaddingThenCachedStepsMatchReference(int heads, int kvHeads, bool interleaved, bool tied)
    {
        AssertPortableMatchesReference(heads, kvHeads, interleaved, tied, GraphOptions.Portable);
        var graph = GptGraph.Build(TestWeights.Random(TestWeights.SmallLlama(heads, kvHeads, interleaved, tied), seed: 1));
        Assert.AreEqual(2 * 2 + 1, graph.Node.Count(n => n.OpType == "RMSNormalization"), "opset 23's operators by default");
        Assert.AreEqual(2 * 2, graph.Node.Count(n => n.OpType == "RotaryEmbedding"));
        Assert.AreEqual(2, graph.Node.Count(n => n.OpType == "Attention"));
        Assert.IsFalse(graph.Node.Any(n => n.OpType is "Softmax" or "ReduceMean"), "nothing decomposed");
    }

    [TestMethod]
    [DynamicData(nameof(Configurations))]
    public void DecomposedOperatorsMatchReference(int heads, int kvHeads, bool interleaved, bool tied)
    {
        AssertPortableMatchesReference(heads, kvHeads, interleaved, tied, new GraphOptions { DecomposedLlamaOperators = true });
        var graph = GptGraph.Build(TestWeights.Random(TestWeights.SmallLlama(heads, kvHeads, interleaved, tied), seed: 1), new GraphOptions { DecomposedLlamaOperators = true });
        Assert.IsFalse(graph.Node.Any(n => n.OpType is "RMSNormalization" or "RotaryEmbedding" or "Attention"), "opset 21 operators only");
    }

    private static void AssertPortableMatchesReference(int heads, int kvHeads, bool interleaved, bool tied, GraphOptions graph)
    {
        var weights = TestWeights.Random(TestWeights.SmallLlama(heads, kvHeads, interleaved, tied), seed: (ulong)(heads * 7 + kvHeads), scale: 0.2);
        using var tmp = TestPaths.NewTemp();
        var result = GptExporter.Export(weights, tmp.Sub("m"), new ExportOptions { Graph = graph });
        using var ort = new OrtGpt(result.ModelPath);
        Assert.AreEqual(kvHeads, ort.Heads, "the cache has one head per key/value head");

        long[][] all = [[4, 8, 15, 16, 23, 42, 7, 1], [0, 0, 11, 22, 33, 44, 5, 6]];
        long[][] mask = [[1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1]];
        long[][] pos = [[0, 1, 2, 3, 4, 5, 6, 7], [0, 0, 0, 1, 2, 3, 4, 5]];
        var full = ort.Run(all, mask, pos, null, 0);
        var expected = ReferenceGpt.Logits(weights, all, mask, pos);
        GptGraphTests.AssertLogitsEqual(expected, full.Logits, mask, "portable prompt");

        // The padded row's real tokens equal the same tokens alone: rotary angles follow position_ids, not slots.
        var alone = ReferenceGpt.Logits(weights, [all[1][2..]]);
        Assert.AreEqual(alone[0][0][3], expected[1][2][3], 1e-5, "reference padding invariance");

        const int prefill = 5;
        var step = ort.Run(Cols(all, 0, prefill), Cols(mask, 0, prefill), Cols(pos, 0, prefill), null, 0);
        int vocab = weights.Config.VocabSize;
        for (int t = prefill; t < all[0].Length; t++)
        {
            step = ort.Run(Cols(all, t, t + 1), Cols(mask, 0, t + 1), Cols(pos, t, t + 1), step.Present, t);
            for (int b = 0; b < 2; b++)
            {
                float max = 0;
                for (int v = 0; v < vocab; v++)
                {
                    max = Math.Max(max, Math.Abs(expected[b][t][v] - step.Logits[b * vocab + v]));
                }

                Assert.IsLessThanOrEqualTo(Tolerance, max, $"cached step t={t} row {b}: max |onnx - reference| = {max}");
            }
        }
    }

    [TestMethod]
    [DynamicData(nameof(Configurations))]
    public void FusedBatchPrefillAndInPlaceDecodeMatchReference(int heads, int kvHeads, bool interleaved, bool tied)
    {
        var weights = TestWeights.Random(TestWeights.SmallLlama(heads, kvHeads, interleaved, tied), seed: 31, scale: 0.2);
        AssertFusedMatchesReference(weights, new GraphOptions { Flavor = GraphFlavor.Fused }, Tolerance);
    }

    [TestMethod]
    public void FusedGraphUsesGroupQueryAttentionWithItsOwnRotaryAndSimplifiedNorms()
    {
        var weights = TestWeights.Random(TestWeights.SmallLlama(2, 1, interleaved: true, layers: 3), seed: 32);
        var graph = GptGraph.Build(weights, new GraphOptions { Flavor = GraphFlavor.Fused });
        var gqa = graph.Node.Where(n => n.OpType == "GroupQueryAttention").ToList();
        Assert.HasCount(3, gqa);
        var attributes = gqa[0].Attribute.ToDictionary(a => a.Name, a => a.I);
        Assert.AreEqual(1, attributes["do_rotary"]);
        Assert.AreEqual(1, attributes["rotary_interleaved"], "llama2.c's pairs are interleaved");
        Assert.AreEqual(2, attributes["num_heads"]);
        Assert.AreEqual(1, attributes["kv_num_heads"]);
        Assert.AreEqual(GptGraph.CosCache, gqa[0].Input[7]);
        Assert.AreEqual(GptGraph.SinCache, gqa[0].Input[8]);
        Assert.AreEqual(1, graph.Node.Count(n => n.OpType == "SimplifiedLayerNormalization"), "only layer 0's first norm has no residual to add");
        Assert.AreEqual(3 * 2, graph.Node.Count(n => n.OpType == "SkipSimplifiedLayerNormalization"));
        Assert.IsFalse(graph.Input.Any(i => i.Name == GraphNames.PositionIds), "GroupQueryAttention rotates by cache position: no position_ids");
        Assert.IsFalse(graph.Node.Any(n => n.OpType == "Add"), "every residual add is inside a norm");

        var halves = GptGraph.Build(LlamaRotaryLayout.ToHalves(weights), new GraphOptions { Flavor = GraphFlavor.Fused });
        Assert.AreEqual(0, halves.Node.First(n => n.OpType == "GroupQueryAttention").Attribute.Single(a => a.Name == "rotary_interleaved").I);

        // Heads of 8 (stories260K's): GroupQueryAttention cannot rotate them, so q and k are rotated before it by position.
        var small = GptGraph.Build(TestWeights.Random(TestWeights.SmallLlama(4, 2), seed: 32), new GraphOptions { Flavor = GraphFlavor.Fused });
        var node = small.Node.First(n => n.OpType == "GroupQueryAttention");
        Assert.IsFalse(node.Attribute.Any(a => a.Name == "do_rotary"));
        Assert.AreEqual(7, node.Input.Count, "separate q, k, v; no cos/sin caches");
        Assert.IsTrue(small.Input.Any(i => i.Name == GraphNames.PositionIds));
        Assert.IsTrue(small.Node.Any(n => n.Name == "/model/layers.0/attn/q_rotary/rotated"));
    }

    [TestMethod]
    public void BothRotaryPairingsComputeTheSameModel()
    {
        // Hugging Face's permutation of q_proj/k_proj rows turns interleaved pairs into halves without changing the
        // network: the reference and both graphs give the same logits for either layout.
        var interleaved = TestWeights.Random(TestWeights.SmallLlama(4, 2, interleaved: true), seed: 33, scale: 0.2);
        var halves = LlamaRotaryLayout.ToHalves(interleaved);
        Assert.IsFalse(halves.Config.RotaryInterleaved);
        CollectionAssert.AreNotEqual(interleaved[LlamaTensorNames.Attention(0, "q_proj")].Data, halves[LlamaTensorNames.Attention(0, "q_proj")].Data,
            "the rows moved");
        CollectionAssert.AreEqual(interleaved[LlamaTensorNames.Attention(0, "v_proj")].Data, halves[LlamaTensorNames.Attention(0, "v_proj")].Data,
            "v_proj is not rotated, so it is not permuted");
        CollectionAssert.AreEqual(interleaved[LlamaTensorNames.Attention(1, "k_proj")].Data,
            LlamaRotaryLayout.ToInterleaved(halves)[LlamaTensorNames.Attention(1, "k_proj")].Data, "the permutation round-trips");

        long[][] ids = [[1, 9, 30, 2, 51, 7]];
        var a = ReferenceGpt.Logits(interleaved, ids)[0];
        var b = ReferenceGpt.Logits(halves, ids)[0];
        double max = a.Zip(b).Max(p => p.First.Zip(p.Second).Max(q => Math.Abs(q.First - q.Second)));
        Assert.IsLessThan(1e-5, max, $"reference: interleaved vs halves differ by {max}");

        // Reading the permuted weights with the wrong pairing must change the result (the test can fail).
        var wrong = new GptWeights(halves.Config with { RotaryInterleaved = true }, halves.Names.ToDictionary(n => n, n => halves[n]));
        var c = ReferenceGpt.Logits(wrong, ids)[0];
        Assert.IsGreaterThan(1e-2, c.Zip(a).Max(p => p.First.Zip(p.Second).Max(q => Math.Abs(q.First - q.Second))), "the pairing matters");

        using var tmp = TestPaths.NewTemp();
        foreach (var (w, name) in new[] { (interleaved, "i"), (halves, "h") })
        {
            var result = GptExporter.Export(w, tmp.Sub(name));
            using var ort = new OrtGpt(result.ModelPath);
            GptGraphTests.AssertLogitsEqual([a], ort.Run(ids, [[1, 1, 1, 1, 1, 1]], [[0, 1, 2, 3, 4, 5]], null, 0).Logits, [[1, 1, 1, 1, 1, 1]], $"portable {name}");
        }
    }

    [TestMethod]
    public void RopeThetaChangesTheAngles()
    {
        var a = TestWeights.Random(TestWeights.SmallLlama(4, 2, theta: 10000), seed: 34, scale: 0.2);
        var b = new GptWeights(a.Config with { RopeTheta = 500000 }, a.Names.ToDictionary(n => n, n => a[n]));
        long[][] ids = [[3, 1, 4, 1, 5, 9, 2, 6]];
        var expected = ReferenceGpt.Logits(b, ids);
        Assert.IsGreaterThan(1e-3, Math.Abs(expected[0][7][3] - ReferenceGpt.Logits(a, ids)[0][7][3]), "θ moves the logits");
        using var tmp = TestPaths.NewTemp();
        var result = GptExporter.Export(b, tmp.Sub("m"));
        using var ort = new OrtGpt(result.ModelPath);
        long[][] mask = [[1, 1, 1, 1, 1, 1, 1, 1]];
        GptGraphTests.AssertLogitsEqual(expected, ort.Run(ids, mask, [[0, 1, 2, 3, 4, 5, 6, 7]], null, 0).Logits, mask, "θ 500000");
    }

    /// <summary>Two rows of different lengths prefilled right-padded, then three in-place decode steps; each position checked.</summary>
    internal static void AssertFusedMatchesReference(GptWeights weights, GraphOptions graph, float tolerance)
    {
        using var tmp = TestPaths.NewTemp();
        var result = GptExporter.Export(weights, tmp.Sub("m"), new ExportOptions { Graph = graph });
        using var ort = new FusedOrtGpt(result.ModelPath, batch: 2, capacity: 12);
        Assert.AreEqual(weights.Config.KvHeads, ort.Heads);
        int vocab = weights.Config.VocabSize;
        long[][] seqs = [[5, 17, 3, 52, 0, 9, 33, 2, 44, 8], [8, 41, 2, 19, 7, 7, 30, 1]];
        int[] prompt = [7, 4];
        int t = prompt.Max();
        long[][] ids = seqs.Select((s, b) => Enumerable.Range(0, t).Select(i => i < prompt[b] ? s[i] : 0L).ToArray()).ToArray();
        long[][] mask = prompt.Select(p => Enumerable.Range(0, t).Select(i => i < p ? 1L : 0L).ToArray()).ToArray();
        long[][] pos = prompt.Select(p => Enumerable.Range(0, t).Select(i => i < p ? (long)i : 0L).ToArray()).ToArray();
        float[] logits = ort.Run(ids, mask, pos);
        for (int b = 0; b < 2; b++)
        {
            var expected = ReferenceGpt.Logits(weights, [seqs[b][..prompt[b]]])[0];
            AssertRows(expected, logits, b * t, prompt[b], vocab, tolerance, $"fused prompt row {b}");
        }

        int[] length = [.. prompt];
        for (int step = 0; step < 3; step++)
        {
            int total = length.Max() + 1;
            long[][] next = seqs.Select((s, b) => new[] { s[length[b]] }).ToArray();
            long[][] stepMask = length.Select(l => Enumerable.Range(0, total).Select(i => i <= l ? 1L : 0L).ToArray()).ToArray();
            logits = ort.Run(next, stepMask, length.Select(l => new[] { (long)l }).ToArray(), logitsToKeep: 1);
            for (int b = 0; b < 2; b++)
            {
                var expected = ReferenceGpt.Logits(weights, [seqs[b][..(length[b] + 1)]])[0];
                AssertRows([expected[length[b]]], logits, b, 1, vocab, tolerance, $"fused step {step} row {b}");
                length[b]++;
            }
        }
    }

    internal static void AssertRows(float[][] expected, float[] actual, int rowOffset, int count, int vocab, float tolerance, string what)
    {
        float max = 0;
        for (int i = 0; i < count; i++)
        {
            for (int v = 0; v < vocab; v++)
            {
                float d = Math.Abs(expected[i][v] - actual[(rowOffset + i) * vocab + v]);
                max = float.IsNaN(d) ? float.PositiveInfinity : Math.Max(max, d);
            }
        }

        Assert.IsLessThanOrEqualTo(tolerance, max, $"{what}: max |onnx - reference| = {max}");
    }

    private static long[][] Cols(long[][] rows, int from, int to) => rows.Select(r => r[from..to]).ToArray();
}

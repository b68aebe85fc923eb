using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter.Reference;
using OnnxGpt.Exporter;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Exporter.Onnx;

/// <summary>The fused graph (GroupQueryAttention, in-place cache) keeps the reference's numbers.</summary>
[TestClass]
public sealed class FusedGraphTests
{
    private const float Tolerance = 1e-4f;

    public static IEnumerable<object[]> Configurations => GptGraphTests.Configurations;

    [TestMethod]
    [DynamicData(nameof(Configurations))]
    public void BatchPrefillAndInPlaceDecodeMatchReference(int heads, Activation activation, bool bias, bool tied)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads, activation, bias, tied, width: 32), seed: 21);
        using var tmp = TestPaths.NewTemp();
        var result = GptExporter.Export(weights, tmp.Sub("m"), new ExportOptions { Graph = new GraphOptions { Flavor = GraphFlavor.Fused } });
        using var ort = new FusedOrtGpt(result.ModelPath, batch: 2, capacity: 12);
        int vocab = weights.Config.VocabSize;

        // Two sequences of different lengths; the shorter one is padded on the right in the prompt call.
        long[][] seqs = [[5, 17, 3, 52, 0, 9, 33, 2, 44, 8], [8, 41, 2, 19, 7, 7, 30, 1]];
        int[] prompt = [7, 4];
        int t = prompt.Max();
        long[][] ids = seqs.Select((s, b) => Enumerable.Range(0, t).Select(i => i < prompt[b] ? s[i] : 0L).ToArray()).ToArray();
        long[][] mask = prompt.Select(p => Enumerable.Range(0, t).Select(i => i < p ? 1L : 0L).ToArray()).ToArray();
        long[][] pos = prompt.Select(p => Enumerable.Range(0, t).Select(i => i < p ? (long)i : 0L).ToArray()).ToArray();
        float[] logits = ort.Run(ids, mask, pos);
        for (int b = 0; b < 2; b++)
        {
            var expected = ReferenceGpt.Logits(weights, [seqs[b][..prompt[b]]]);
            AssertRow(expected[0], logits, b * t, prompt[b], vocab, $"prompt row {b}");
        }

        // Three single-token steps, each row at its own position, written into the cache in place.
        int[] length = [.. prompt];
        for (int step = 0; step < 3; step++)
        {
            int total = length.Max() + 1;
            long[][] next = seqs.Select((s, b) => new[] { s[length[b]] }).ToArray();
            long[][] stepMask = length.Select(l => Enumerable.Range(0, total).Select(i => i <= l ? 1L : 0L).ToArray()).ToArray();
            long[][] stepPos = length.Select(l => new[] { (long)l }).ToArray();
            logits = ort.Run(next, stepMask, stepPos, logitsToKeep: 1);
            for (int b = 0; b < 2; b++)
            {
                var expected = ReferenceGpt.Logits(weights, [seqs[b][..(length[b] + 1)]]);
                AssertRow([expected[0][length[b]]], logits, b, 1, vocab, $"step {step} row {b}");
                length[b]++;
            }
        }
    }

    [TestMethod]
    public void LogitsToKeepProjectsOnlyTheLastPositions()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: 32), seed: 22);
        using var tmp = TestPaths.NewTemp();
        var result = GptExporter.Export(weights, tmp.Sub("m"), new ExportOptions { Graph = new GraphOptions { Flavor = GraphFlavor.Fused } });
        long[] seq = [1, 2, 3, 4, 5, 6];
        var expected = ReferenceGpt.Logits(weights, [seq])[0];
        foreach (long keep in new long[] { 1, 3 })
        {
            using var ort = new FusedOrtGpt(result.ModelPath, batch: 1, capacity: 8);
            float[] logits = ort.Run([seq], [[1, 1, 1, 1, 1, 1]], [[0, 1, 2, 3, 4, 5]], keep);
            Assert.AreEqual(keep * weights.Config.VocabSize, logits.Length, $"num_logits_to_keep {keep} gives {keep} rows of logits");
            AssertRow(expected[^(int)keep..], logits, 0, (int)keep, weights.Config.VocabSize, $"keep {keep}");
        }
    }

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void ResidualAddsAndProjectionBiasesHappenInsideSkipLayerNormalization(bool bias)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, bias: bias, layers: 3, width: 32), seed: 25);
        var graph = GptGraph.Build(weights, new GraphOptions { Flavor = GraphFlavor.Fused });
        var skip = graph.Node.Where(n => n.OpType == "SkipLayerNormalization").ToList();
        string[] expected =
        [
            .. Enumerable.Range(0, 3).SelectMany(i => new[] { $"/model/layers.{i}/ln_1/SkipLayerNormalization", $"/model/layers.{i}/ln_2/SkipLayerNormalization" }),
            "/model/ln_f/SkipLayerNormalization",
        ];
        CollectionAssert.AreEqual(expected, skip.Select(n => n.Name).ToArray());
        Assert.IsTrue(skip.All(n => n.Domain == GptGraph.MicrosoftDomain && n.Output.Count == 4 && n.Output[1] == "" && n.Output[2] == ""),
            "mean and inverse deviation are left out; the sum (output 3) is the residual");
        Assert.IsFalse(graph.Node.Any(n => n.OpType == "LayerNormalization"), "every layer norm is a SkipLayerNormalization");
        Assert.AreEqual(bias ? 6 : 0, graph.Node.Count(n => n.OpType == "Add"),
            "only the biases of c_attn and c_fc stay separate Adds (ONNX Runtime folds c_fc's into FastGelu)");

        // The first takes the two embeddings; the projection biases ride along as SkipLayerNormalization's bias input.
        Assert.AreEqual("/model/embed/wte/Gather/output_0", skip[0].Input[0]);
        Assert.AreEqual("/model/embed/wpe/Gather/output_0", skip[0].Input[1]);
        Assert.AreEqual(bias ? 4 : 3, skip[0].Input.Count);
        Assert.AreEqual(bias ? "transformer.h.0.attn.c_proj.bias" : null, bias ? skip[1].Input[4] : null);
        Assert.AreEqual(bias ? "transformer.h.2.mlp.c_proj.bias" : null, bias ? skip[^1].Input[4] : null);
    }

    [TestMethod]
    public void HeadSizeNotMultipleOfEightIsRefusedWithTheNumbers()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 4, width: 16), seed: 23);
        using var tmp = TestPaths.NewTemp();
        var e = Assert.ThrowsExactly<OnnxGptException>(() =>
            GptExporter.Export(weights, tmp.Sub("m"), new ExportOptions { Graph = new GraphOptions { Flavor = GraphFlavor.Fused } }));
        StringAssert.Contains(e.Message, "head size 4");
        StringAssert.Contains(e.Message, "--graph portable");
    }

    [TestMethod]
    public void ProgressCountsCheckpointTensorsNotInitializers()
    {
        // A quantized projection is written as `.q4` + `.scales`, and the tied table as the float table plus its
        // quantized copy; the count the user sees must still end at the checkpoint's tensor count.
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: 64), seed: 25);
        using var tmp = TestPaths.NewTemp();
        var lines = new List<string>();
        GptExporter.Export(weights, tmp.Sub("m"), new ExportOptions { Graph = new GraphOptions { Flavor = GraphFlavor.Fused, Quantization = WeightQuantization.Int4 } },
            new SynchronousProgress(lines.Add));
        var counts = lines.Where(l => l.StartsWith("weights ", StringComparison.Ordinal)).Select(l => l.Split(' ')[1].TrimEnd(':')).ToList();
        int total = weights.Names.Count();
        Assert.IsGreaterThan(total, lines.Count(l => l.StartsWith("weights ", StringComparison.Ordinal)), "more initializers than checkpoint tensors, else this test checks nothing");
        Assert.AreEqual($"{total}/{total}", counts[^1]);
        Assert.IsTrue(counts.All(c => int.Parse(c.Split('/')[0], System.Globalization.CultureInfo.InvariantCulture) <= total), string.Join(", ", counts));
    }

    private sealed class SynchronousProgress(Action<string> report) : IProgress<string>
    {
        public void Report(string value) => report(value);
    }

    [TestMethod]
    [DataRow(WeightQuantization.Int8, 0.02)]
    [DataRow(WeightQuantization.Int4, 0.02)]
    public void QuantizedExportMatchesReferenceOnDequantizedWeights(WeightQuantization quantization, double relativeTolerance)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: 64), seed: 24);
        using var tmp = TestPaths.NewTemp();
        var options = new GraphOptions { Flavor = GraphFlavor.Fused, Quantization = quantization };
        var result = GptExporter.Export(weights, tmp.Sub("m"), new ExportOptions { Graph = options });
        // What the file stands for: the same weights passed through the quantizer. The kernel also quantizes its
        // activations to int8 per block (accuracy level 4), so equality holds to a small relative error, not 1e-4.
        var dequantized = Dequantized(weights, quantization == WeightQuantization.Int4 ? 4 : 8, options.BlockSize);
        long[] seq = [3, 14, 15, 9, 26, 5, 35];
        var expected = ReferenceGpt.Logits(dequantized, [seq])[0];
        using var ort = new FusedOrtGpt(result.ModelPath, batch: 1, capacity: 8);
        float[] logits = ort.Run([seq], [seq.Select(_ => 1L).ToArray()], [Enumerable.Range(0, seq.Length).Select(i => (long)i).ToArray()]);
        double scale = expected.SelectMany(r => r).Max(v => Math.Abs(v));
        double max = 0;
        for (int i = 0; i < seq.Length; i++)
        {
            for (int v = 0; v < weights.Config.VocabSize; v++)
            {
                max = Math.Max(max, Math.Abs(expected[i][v] - logits[i * weights.Config.VocabSize + v]));
            }
        }

        Assert.IsLessThanOrEqualTo(relativeTolerance * scale, max, $"{quantization}: max |ORT - reference on dequantized weights| = {max}, logit scale {scale}");

        // And it is not the float model: quantization moved the logits measurably.
        var exact = ReferenceGpt.Logits(weights, [seq])[0];
        double moved = exact.Zip(expected, (a, b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max()).Max();
        Assert.IsGreaterThan(1e-4, moved, "the dequantized weights differ from the float ones");
    }

    [TestMethod]
    [DataRow(4)]
    [DataRow(8)]
    public void BlockQuantizerErrorIsWithinOneStepAndHalfAStepInside(int bits)
    {
        var rng = new Random(5);
        int n = 6, k = 80;   // 80 is not a multiple of the block: the last block is partial
        var w = Enumerable.Range(0, n * k).Select(_ => (float)(rng.NextDouble() * 2 - 1) * (1 + rng.Next(3))).ToArray();
        var (packed, scales) = BlockQuantizer.Quantize(w, n, k, bits, 32);
        var back = BlockQuantizer.Dequantize(packed, scales, n, k, bits, 32);
        for (int i = 0; i < w.Length; i++)
        {
            float scale = scales[(i / k) * 3 + (i % k) / 32], step = Math.Abs(scale);
            // The value of largest magnitude maps to -2^(bits-1) exactly; values of the other sign near that magnitude
            // clip at 2^(bits-1) - 1 and may be a whole step off. Everything inside the range rounds to half a step.
            bool inside = Math.Abs(w[i] / scale) <= (1 << (bits - 1)) - 1;
            float bound = (inside ? step / 2 : step) + 1e-6f;
            Assert.IsLessThanOrEqualTo(bound, Math.Abs(w[i] - back[i]), $"value {i}: {w[i]} came back as {back[i]} (step {step})");
        }
    }

    internal static GptWeights Dequantized(GptWeights weights, int bits, int block)
    {
        var tensors = weights.Names.ToDictionary(n => n, n => weights[n]);
        foreach (var name in weights.Names.Where(n => n.EndsWith(".weight", StringComparison.Ordinal) && weights[n].Rank == 2 && n != TensorNames.Wpe))
        {
            var t = weights[name];
            bool conv1D = name != TensorNames.Wte && name != TensorNames.LmHead;
            int rows = t.Shape[0], cols = t.Shape[1];
            int n = conv1D ? cols : rows, k = conv1D ? rows : cols;
            float[] nk = conv1D ? Enumerable.Range(0, rows * cols).Select(i => t.Data[(i % k) * cols + i / k]).ToArray() : t.Data;
            var (packed, scales) = BlockQuantizer.Quantize(nk, n, k, bits, block);
            var back = BlockQuantizer.Dequantize(packed, scales, n, k, bits, block);
            var data = conv1D ? Enumerable.Range(0, rows * cols).Select(i => back[(i % cols) * k + i / cols]).ToArray() : back;
            if (name == TensorNames.Wte && weights.Config.TiedHead)
            {
                // The embedding lookup stays float; only the head reads the quantized copy. Give the reference an
                // untied model whose head is the quantized table.
                tensors[TensorNames.LmHead] = new Tensor(t.Shape, data);
                continue;
            }

            tensors[name] = new Tensor(t.Shape, data);
        }

        var config = weights.Config.TiedHead ? weights.Config with { TiedHead = false } : weights.Config;
        return new GptWeights(config, tensors);
    }

    private static void AssertRow(float[][] expected, float[] actual, int rowOffset, int count, int vocab, string what) =>
        LlamaGraphTests.AssertRows(expected, actual, rowOffset, count, vocab, Tolerance, what);
}

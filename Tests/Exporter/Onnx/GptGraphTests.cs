using Microsoft.ML.OnnxRuntime;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Reference;
using OnnxGpt.Exporter;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Exporter.Onnx;

/// <summary>The exported graph, run by ONNX Runtime on CPU, equals the reference forward pass.</summary>
[TestClass]
public sealed class GptGraphTests
{
    private const float Tolerance = 1e-4f;

    public static IEnumerable<object[]> Configurations =>
    [
        [1, Activation.GeluNew, true, true],
        [4, Activation.Gelu, true, false],
        [2, Activation.Relu, false, true],
        [4, Activation.GeluNew, false, false],
        [2, Activation.Gelu, false, true],
    ];

    [TestMethod]
    [DynamicData(nameof(Configurations))]
    public void BatchWithLeftPaddingMatchesReference(int heads, Activation activation, bool bias, bool tied)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads, activation, bias, tied), seed: (ulong)(heads * 10 + (int)activation));
        using var tmp = TestPaths.NewTemp();
        GptExporter.Export(weights, tmp.Sub("m"));
        using var ort = new OrtGpt(Path.Combine(tmp.Sub("m"), ModelFolder.ModelFile));

        // Row 0: 7 real tokens. Row 1: 3 padding tokens on the left, then 4 real ones.
        long[][] ids = [[5, 17, 3, 52, 0, 9, 33], [0, 0, 0, 8, 41, 2, 19]];
        long[][] mask = [[1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1]];
        long[][] pos = [[0, 1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 1, 2, 3]];
        var step = ort.Run(ids, mask, pos, null, 0);
        var expected = ReferenceGpt.Logits(weights, ids, mask, pos);
        AssertLogitsEqual(expected, step.Logits, mask, "batch");

        // The padded row's real tokens equal the same tokens alone, unpadded.
        var alone = ReferenceGpt.Logits(weights, [[8, 41, 2, 19]]);
        for (int t = 0; t < 4; t++)
        {
            for (int v = 0; v < weights.Config.VocabSize; v++)
            {
                Assert.AreEqual(alone[0][t][v], expected[1][t + 3][v], 1e-5, $"reference padding invariance at t={t}, v={v}");
            }
        }
    }

    [TestMethod]
    [DynamicData(nameof(Configurations))]
    public void PrefillThenSingleStepsEqualFullRecompute(int heads, Activation activation, bool bias, bool tied)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads, activation, bias, tied), seed: 7);
        using var tmp = TestPaths.NewTemp();
        GptExporter.Export(weights, tmp.Sub("m"));
        using var ort = new OrtGpt(Path.Combine(tmp.Sub("m"), ModelFolder.ModelFile));

        long[][] all = [[4, 8, 15, 16, 23, 42, 7, 1], [0, 0, 11, 22, 33, 44, 5, 6]];
        long[][] fullMask = [[1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1]];
        long[][] fullPos = [[0, 1, 2, 3, 4, 5, 6, 7], [0, 0, 0, 1, 2, 3, 4, 5]];
        var full = ort.Run(all, fullMask, fullPos, null, 0);
        AssertLogitsEqual(ReferenceGpt.Logits(weights, all, fullMask, fullPos), full.Logits, fullMask, "full");

        const int prefill = 5;
        var step = ort.Run(Cols(all, 0, prefill), Cols(fullMask, 0, prefill), Cols(fullPos, 0, prefill), null, 0);
        int vocab = weights.Config.VocabSize;
        for (int t = prefill; t < all[0].Length; t++)
        {
            step = ort.Run(Cols(all, t, t + 1), Cols(fullMask, 0, t + 1), Cols(fullPos, t, t + 1), step.Present, t);
            for (int b = 0; b < 2; b++)
            {
                float maxDiff = 0;
                for (int v = 0; v < vocab; v++)
                {
                    float want = full.Logits[(b * all[0].Length + t) * vocab + v];
                    maxDiff = Math.Max(maxDiff, Math.Abs(want - step.Logits[b * vocab + v]));
                }

                Assert.IsLessThanOrEqualTo(Tolerance, maxDiff, $"step t={t} row {b}: cached logits differ from full recompute by {maxDiff}");
            }
        }

        // The final present holds every token: at real (unpadded) positions it equals the keys and values of the
        // full run. Padding positions attend to nothing, so their keys are undefined and not compared.
        int s = all[0].Length, d = ort.HeadSize;
        for (int i = 0; i < ort.Layers; i++)
        {
            float diff = 0;
            for (int b = 0; b < 2; b++)
            {
                for (int h = 0; h < ort.Heads; h++)
                {
                    for (int p = 0; p < s; p++)
                    {
                        if (fullMask[b][p] == 0)
                        {
                            continue;
                        }

                        for (int k = 0; k < d; k++)
                        {
                            int at = ((b * ort.Heads + h) * s + p) * d + k;
                            diff = Math.Max(diff, Math.Abs(full.Present[i].Key[at] - step.Present[i].Key[at]));
                            diff = Math.Max(diff, Math.Abs(full.Present[i].Value[at] - step.Present[i].Value[at]));
                        }
                    }
                }
            }

            Assert.IsLessThanOrEqualTo(Tolerance, diff, $"layer {i} present differs from the full run by {diff}");
        }
    }

    [TestMethod]
    [DataRow(GraphOptimizationLevel.ORT_DISABLE_ALL)]
    [DataRow(GraphOptimizationLevel.ORT_ENABLE_BASIC)]
    [DataRow(GraphOptimizationLevel.ORT_ENABLE_EXTENDED)]
    [DataRow(GraphOptimizationLevel.ORT_ENABLE_ALL)]
    public void EveryOptimizationLevelMatchesReference(GraphOptimizationLevel level)
    {
        foreach (var row in Configurations)
        {
            var weights = TestWeights.Random(TestWeights.Small((int)row[0], (Activation)row[1], (bool)row[2], (bool)row[3]), seed: 99);
            using var tmp = TestPaths.NewTemp();
            GptExporter.Export(weights, tmp.Sub("m"));
            using var ort = new OrtGpt(Path.Combine(tmp.Sub("m"), ModelFolder.ModelFile), level);
            long[][] ids = [[1, 2, 3, 4, 5], [0, 0, 50, 51, 52]];
            long[][] mask = [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]];
            long[][] pos = [[0, 1, 2, 3, 4], [0, 0, 0, 1, 2]];
            AssertLogitsEqual(ReferenceGpt.Logits(weights, ids, mask, pos), ort.Run(ids, mask, pos, null, 0).Logits, mask, $"{level} {string.Join(",", row)}");
        }
    }

    internal static void AssertLogitsEqual(float[][][] expected, float[] actual, long[][] mask, string what)
    {
        int t = expected[0].Length, vocab = expected[0][0].Length;
        float maxDiff = 0;
        string where = "";
        for (int b = 0; b < expected.Length; b++)
        {
            for (int i = 0; i < t; i++)
            {
                if (mask[b][mask[b].Length - t + i] == 0)
                {
                    continue;   // padding positions have no defined logits
                }

                for (int v = 0; v < vocab; v++)
                {
                    float diff = Math.Abs(expected[b][i][v] - actual[(b * t + i) * vocab + v]);
                    if (!(diff <= maxDiff))
                    {
                        maxDiff = float.IsNaN(diff) ? float.PositiveInfinity : diff;
                        where = $"row {b}, position {i}, token {v}";
                    }
                }
            }
        }

        Assert.IsLessThanOrEqualTo(Tolerance, maxDiff, $"{what}: max |ONNX - reference| = {maxDiff} at {where}");
    }

    private static long[][] Cols(long[][] rows, int from, int to) => rows.Select(r => r[from..to]).ToArray();
}

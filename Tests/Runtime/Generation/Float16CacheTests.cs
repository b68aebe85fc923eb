using Microsoft.ML.OnnxRuntime.Tensors;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>
/// An export with a float16 KV cache (<c>--kv-cache fp16</c>) through ONNX Runtime: its logits follow the float32
/// cache's as closely as float16 rounding of keys and values allows, rows batched together decode as they do alone,
/// and a prompt fed in one step or in pieces gives the same tokens; on head size 64 (the kernel's fast path, every
/// GPT-2 size) and 16.
/// </summary>
[TestClass]
public sealed class Float16CacheTests
{
    private static readonly GenerationOptions Greedy = new() { DoSample = false, MaxNewTokens = 24 };
    private static readonly GraphOptions Fused = new() { Flavor = GraphFlavor.Fused };

    private static GptWeights Weights(int heads, int width) =>
        TestWeights.Random(TestWeights.Small(heads: heads, width: width, layers: 2) with { ContextLength = 96 }, seed: (ulong)(300 + width));

    [TestMethod]
    [DataRow(2, 128)]
    [DataRow(2, 32)]
    public void LogitsFollowTheFloat32CacheWithinFloat16Rounding(int heads, int width)
    {
        var weights = Weights(heads, width);
        using var tmp = TestPaths.NewTemp();
        using var plain = GptModel.Load(TestModels.Export(weights, tmp, "fp32", new ExportOptions { Graph = Fused }));
        using var halves = GptModel.Load(TestModels.Export(weights, tmp, "kv16", new ExportOptions { Graph = Fused with { Float16Cache = true } }));
        Assert.AreEqual(TensorElementType.Float, plain.Signature.CacheElementType);
        Assert.AreEqual(TensorElementType.Float16, halves.Signature.CacheElementType);
        Assert.IsTrue(halves.Signature.IsFused);
        Assert.IsFalse(File.Exists(Path.Combine(halves.Folder, ModelFolder.GenAiConfigFile)), "GenAI cannot run OnnxGpt's operator: no GenAI config");

        int[] prompt = [5, 17, 3, 52, 9, 5, 17, 40, 2];
        using var a = plain.CreateGenerator(Greedy);
        using var b = halves.CreateGenerator(Greedy);
        a.Append(prompt);
        b.Append(prompt);
        float worst = 0, scale = 0;
        for (int step = 0; step < 20; step++)
        {
            var x = a.GetNextTokenLogits(0).ToArray();
            var y = b.GetNextTokenLogits(0).ToArray();
            worst = Math.Max(worst, x.Zip(y, (p, q) => MathF.Abs(p - q)).Max());
            scale = Math.Max(scale, x.Max(MathF.Abs));
            int next = Array.IndexOf(x, x.Max());
            a.Append([next]);
            b.Append([next]);
        }

        Assert.IsGreaterThan(0f, worst, "the float16 cache rounds keys and values: the logits cannot be bit-identical");
        Assert.IsLessThan(2e-3f * scale, worst, $"largest logit difference {worst} against logits up to {scale}");
    }

    [TestMethod]
    [DataRow(2, 128)]
    [DataRow(2, 32)]
    public void RowsBatchedTogetherDecodeAsTheyDoAlone(int heads, int width)
    {
        var weights = Weights(heads, width);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: new ExportOptions { Graph = Fused with { Float16Cache = true } }));
        int[][] prompts = [[5, 17, 3, 52, 9], [8, 41, 2], [30], [7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]];
        using var batch = model.CreateGenerator(Greedy);
        batch.AppendBatch(prompts);
        var together = batch.GenerateAll();
        for (int r = 0; r < prompts.Length; r++)
        {
            using var alone = model.CreateGenerator(Greedy);
            alone.Append(prompts[r]);
            var expected = alone.GenerateAll()[0];
            CollectionAssert.AreEqual(expected.Ids.ToArray(), together[r].Ids.ToArray(),
                $"row {r}: batched {string.Join(",", together[r].NewIds)}, alone {string.Join(",", expected.NewIds)}");
        }
    }

    [TestMethod]
    [DataRow(2, 128)]
    [DataRow(2, 32)]
    public void APromptFedInPiecesGivesTheTokensOfThePromptInOneStep(int heads, int width)
    {
        // One step of 13 tokens (a first prompt), against 5 + 1 + 7 tokens in three steps over the cache so far.
        var weights = Weights(heads, width);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: new ExportOptions { Graph = Fused with { Float16Cache = true } }));
        int[] prompt = [5, 17, 3, 52, 9, 5, 17, 40, 2, 11, 19, 23, 29];
        using var whole = model.CreateGenerator(Greedy);
        whole.Append(prompt);
        var expectedLogits = whole.GetNextTokenLogits(0).ToArray();
        var expected = whole.GenerateAll()[0];

        using var pieces = model.CreateGenerator(Greedy);
        pieces.Append(prompt[..5]);
        pieces.GetNextTokenLogits(0);
        pieces.Append(prompt[5..6]);
        pieces.GetNextTokenLogits(0);
        pieces.Append(prompt[6..]);
        var logits = pieces.GetNextTokenLogits(0).ToArray();
        float worst = expectedLogits.Zip(logits, (p, q) => MathF.Abs(p - q)).Max();
        Assert.IsLessThan(1e-4f, worst, $"the last position's logits differ by {worst}");
        CollectionAssert.AreEqual(expected.Ids.ToArray(), pieces.GenerateAll()[0].Ids.ToArray());
    }

    [TestMethod]
    public async Task TheBatchEngineGivesEachRequestItsSoloTokens()
    {
        // Two slots for five requests: they queue, join and leave, and prompts go in chunks of 4 beside decoding rows.
        var weights = Weights(2, 128);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: new ExportOptions { Graph = Fused with { Float16Cache = true } }));
        int[][] prompts = [[5, 17, 3, 52, 9], [8, 41, 2], [30], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], [44, 45]];
        using var engine = OnnxGpt.Runtime.Batching.BatchEngine.Start(model, new OnnxGpt.Runtime.Batching.BatchEngineOptions { Slots = 2, PrefillChunkTokens = 4 });
        var requests = prompts.Select(p => engine.Submit(p, Greedy with { MaxNewTokens = 10 })).ToArray();
        for (int i = 0; i < prompts.Length; i++)
        {
            await requests[i].Completion;
            using var alone = model.CreateGenerator(Greedy with { MaxNewTokens = 10 });
            alone.Append(prompts[i]);
            var expected = alone.GenerateAll()[0];
            CollectionAssert.AreEqual(expected.Ids.ToArray(), requests[i].Result!.Ids.ToArray(), $"request {i}");
        }
    }

    [TestMethod]
    public void OptionsThatDoNotGoWithAFloat16CacheAreRefusedWithTheReason()
    {
        var gpt = TestWeights.Random(TestWeights.Small(heads: 2, width: 32), seed: 1);
        using var tmp = TestPaths.NewTemp();
        var portable = Assert.ThrowsExactly<OnnxGptException>(() => TestModels.Export(gpt, tmp, "p", new ExportOptions { Graph = new GraphOptions { Float16Cache = true } }));
        StringAssert.Contains(portable.Message, "--graph fused");
        var half = Assert.ThrowsExactly<OnnxGptException>(() => TestModels.Export(gpt, tmp, "h",
            new ExportOptions { Graph = Fused with { Float16Cache = true, Precision = WeightPrecision.Float16 } }));
        StringAssert.Contains(half.Message, "float16 already");
        var narrow = TestWeights.Random(TestWeights.Small(heads: 4, width: 32), seed: 1);   // head size 8
        var size = Assert.ThrowsExactly<OnnxGptException>(() => TestModels.Export(narrow, tmp, "n", new ExportOptions { Graph = Fused with { Float16Cache = true } }));
        StringAssert.Contains(size.Message, "head size 8");
        var llama = TestWeights.Random(TestWeights.SmallLlama(), seed: 1);
        var family = Assert.ThrowsExactly<OnnxGptException>(() => TestModels.Export(llama, tmp, "l", new ExportOptions { Graph = Fused with { Float16Cache = true } }));
        StringAssert.Contains(family.Message, "Llama");
    }
}

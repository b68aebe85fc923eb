using Microsoft.ML.OnnxRuntime.Tensors;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Model;

/// <summary>
/// Graphs exported elsewhere, in other conventions: the runtime detects each from the graph's inputs and
/// generates the same tokens as the reference, with and without the cache.
/// </summary>
[TestClass]
public sealed class GraphConventionTests
{
    private static readonly GenerationOptions Greedy = new() { DoSample = false, MaxNewTokens = 7 };

    public static IEnumerable<object[]> Variants =>
    [
        [IoConventions.OrtGpt2, true, false],
        [IoConventions.OrtGpt2, false, false],
        [IoConventions.Optimum, false, false],
        [IoConventions.Optimum, true, true],
        [IoConventions.Optimum, false, true],
    ];

    [TestMethod]
    [DynamicData(nameof(Variants))]
    public void VariantIsDetectedAndGeneratesReferenceTokens(string convention, bool positionIds, bool useCacheBranch)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2), seed: 31);
        using var tmp = TestPaths.NewTemp();
        var graph = new GraphOptions { IoConvention = convention, PositionIdsInput = positionIds, UseCacheBranchInput = useCacheBranch };
        using var model = GptModel.Load(TestModels.WriteForeign(weights, tmp, graph, weights.Config.ToJson()));

        var s = model.Signature;
        Assert.AreEqual(convention, s.Convention);
        Assert.AreEqual(2, s.Layers);
        Assert.AreEqual(2, s.Heads);
        Assert.AreEqual(8, s.HeadSize);
        Assert.AreEqual(53, s.VocabSize);
        Assert.AreEqual(positionIds, s.PositionIdsType is not null);
        Assert.AreEqual(useCacheBranch, s.HasUseCacheBranch);
        var indexType = convention == IoConventions.OrtGpt2 ? TensorElementType.Int32 : TensorElementType.Int64;
        Assert.AreEqual(indexType, s.InputIdsType);
        Assert.AreEqual(indexType, s.AttentionMaskType);
        StringAssert.EndsWith(model.ConfigSource, "config.json");

        int[][] prompts = [[4, 9, 16, 25, 36], [49, 1]];
        foreach (bool useCache in new[] { true, false })
        {
            using var generator = model.CreateGenerator(Greedy, new GeneratorOptions { UseKvCache = useCache });
            generator.AppendBatch(prompts);
            var results = generator.GenerateAll();
            for (int b = 0; b < prompts.Length; b++)
            {
                var expected = prompts[b].Concat(TestModels.ReferenceGreedy(weights, prompts[b], Greedy.MaxNewTokens)).ToArray();
                CollectionAssert.AreEqual(expected, results[b].Ids.ToArray(), $"{convention}, cache {useCache}, row {b}");
            }
        }
    }

    [TestMethod]
    public void OurOwnStackedExportLoadsByItsMetadataBesideItsGenAiConfig()
    {
        // The exporter's genai_config.json names the Optimum inputs whatever the convention; the metadata says ort-gpt2.
        var weights = TestWeights.Random(TestWeights.Small(heads: 2), seed: 34);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.Export(weights, tmp, options: new ExportOptions { Graph = new GraphOptions { IoConvention = IoConventions.OrtGpt2 } });
        Assert.IsTrue(File.Exists(Path.Combine(folder, ModelFolder.GenAiConfigFile)));
        using var model = GptModel.Load(folder);
        Assert.AreEqual(IoConventions.OrtGpt2, model.Signature.Convention);
        Assert.AreEqual(ModelLayoutKind.OnnxGpt, model.Layout.Kind);
        using var generator = model.CreateGenerator(Greedy);
        generator.Append([4, 9, 16]);
        CollectionAssert.AreEqual(TestModels.ReferenceGreedy(weights, [4, 9, 16], Greedy.MaxNewTokens), generator.GenerateAll()[0].NewIds.ToArray());
    }

    [TestMethod]
    public void StackedCacheHoldsKeyThenValuePerLayer()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2), seed: 32);
        using var tmp = TestPaths.NewTemp();
        using var stacked = GptModel.Load(TestModels.WriteForeign(weights, tmp, new GraphOptions { IoConvention = IoConventions.OrtGpt2 }, weights.Config.ToJson(), "stacked"));
        using var split = GptModel.Load(TestModels.Export(weights, tmp, "split"));
        using var a = stacked.CreateGenerator(Greedy);
        using var b = split.CreateGenerator(Greedy);
        a.Append([3, 1, 4, 1, 5]);
        b.Append([3, 1, 4, 1, 5]);
        a.GenerateNextToken();
        b.GenerateNextToken();

        Assert.AreEqual(2, a.Cache!.TensorCount);
        Assert.AreEqual(4, b.Cache!.TensorCount);
        for (int layer = 0; layer < 2; layer++)
        {
            var both = a.Cache.GetTensor(layer);                 // (2, B, H, P, D)
            var key = b.Cache.GetTensor(2 * layer);              // (B, H, P, D)
            var value = b.Cache.GetTensor(2 * layer + 1);
            Assert.AreEqual(key.Length + value.Length, both.Length);
            float diff = 0;
            for (int i = 0; i < key.Length; i++)
            {
                diff = Math.Max(diff, Math.Abs(both[i] - key[i]));
                diff = Math.Max(diff, Math.Abs(both[key.Length + i] - value[i]));
            }

            Assert.IsLessThanOrEqualTo(1e-5f, diff, $"layer {layer}");
        }
    }

    [TestMethod]
    public void FusedGraphRunsRowsOfEqualAndOfDifferentLengths()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2), seed: 33);
        using var tmp = TestPaths.NewTemp();
        var fused = new ExportOptions { Graph = new GraphOptions { Flavor = GraphFlavor.Fused } };
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: fused));
        Assert.IsTrue(model.Signature.IsFused);

        // Equal rows, and rows the host left-pads (the fused cache keeps them right-padded inside).
        foreach (int[][] prompts in new[] { new[] { new[] { 5, 17, 3, 52 }, new[] { 8, 41, 2, 7 } }, new[] { new[] { 1, 2, 3 }, new[] { 4 } } })
        {
            foreach (bool useCache in new[] { true, false })
            {
                using var generator = model.CreateGenerator(Greedy, new GeneratorOptions { UseKvCache = useCache });
                generator.AppendBatch(prompts);
                var results = generator.GenerateAll();
                for (int b = 0; b < 2; b++)
                {
                    var expected = prompts[b].Concat(TestModels.ReferenceGreedy(weights, prompts[b], Greedy.MaxNewTokens)).ToArray();
                    CollectionAssert.AreEqual(expected, results[b].Ids.ToArray(), $"fused, cache {useCache}, prompt lengths {prompts[0].Length}/{prompts[1].Length}, row {b}");
                }
            }
        }
    }
}

using GenAiModel = Microsoft.ML.OnnxRuntimeGenAI.Model;
using Microsoft.ML.OnnxRuntimeGenAI;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.GenAi;

/// <summary>
/// ONNX Runtime GenAI 0.18 runs our Llama exports (model type <c>llama</c>) to the greedy tokens of the reference:
/// stories260K (heads of 8: q and k rotated before GroupQueryAttention in the fused graph) and a small model with
/// heads of 16 (GroupQueryAttention's own rotary).
/// </summary>
[TestClass]
public sealed class GenAiLlamaTests
{
    [TestMethod]
    [DataRow(GraphFlavor.Portable)]
    [DataRow(GraphFlavor.Fused)]
    public void Stories260KGreedyFromBosEqualsReference(GraphFlavor flavor)
    {
        using var tmp = TestPaths.NewTemp();
        string folder = Stories260KExport.Folder(tmp, "m", new GraphOptions { Flavor = flavor });
        var tokens = GenAiGreedy(folder, [1], 30);
        var expected = TestModels.ReferenceGreedy(Stories260K.Weights, [1], 29);
        CollectionAssert.AreEqual(expected, tokens[1..], $"{flavor}: GenAI [{string.Join(", ", tokens)}] vs reference [{string.Join(", ", expected)}]");
    }

    [TestMethod]
    [DataRow(GraphFlavor.Portable)]
    [DataRow(GraphFlavor.Fused)]
    public void RotaryInsideGroupQueryAttentionRunsInGenAi(GraphFlavor flavor)
    {
        var weights = TestWeights.Random(TestWeights.SmallLlama(heads: 2, kvHeads: 1, interleaved: false), seed: 43, scale: 0.3);
        weights = weights.WithConfig(weights.Config with { EosTokenId = 52, BosTokenId = 0 });
        using var tmp = TestPaths.NewTemp();
        string folder = tmp.Sub("m");
        GptExporter.Export(weights, folder, new ExportOptions { Graph = new GraphOptions { Flavor = flavor } });
        int[] prompt = [5, 17, 3, 51, 0, 9];
        var tokens = GenAiGreedy(folder, prompt, 20);
        var expected = TestModels.ReferenceGreedy(weights, prompt, 20 - prompt.Length, stopId: 52);
        CollectionAssert.AreEqual(expected.Where(t => t != 52).ToArray(), tokens[prompt.Length..], $"{flavor}: GenAI [{string.Join(", ", tokens)}]");
    }

    private static int[] GenAiGreedy(string folder, int[] prompt, int maxLength)
    {
        using var model = new GenAiModel(folder);
        Assert.AreEqual(GenAiConfig.LlamaModelType, model.GetModelType());
        using var p = new GeneratorParams(model);
        p.SetSearchOption("do_sample", false);
        p.SetSearchOption("max_length", maxLength);
        using var generator = new Generator(model, p);
        generator.AppendTokens(prompt);
        while (!generator.IsDone())
        {
            generator.GenerateNextToken();
        }

        return generator.GetSequence(0).ToArray();
    }
}

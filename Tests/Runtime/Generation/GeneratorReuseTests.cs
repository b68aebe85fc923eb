using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>What a conversation cache relies on: the count of fed tokens, and new options on a kept prefix.</summary>
[TestClass]
public sealed class GeneratorReuseTests
{
    private static readonly GenerationOptions Greedy = new() { DoSample = false, MaxNewTokens = 5 };

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void ProcessedTokensCountThePromptThenOnePerStepAndOnlyNewTokensAfterARewind(bool fused)
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 21);
        using var tmp = TestPaths.NewTemp();
        var graph = new GraphOptions { Flavor = fused ? GraphFlavor.Fused : GraphFlavor.Portable };
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: new ExportOptions { Graph = graph }));
        Assert.AreEqual(fused, model.Signature.IsFused);
        using var generator = model.CreateGenerator(Greedy);
        generator.Append([4, 8, 15, 16, 23, 42 % 53]);
        generator.GenerateAll();
        Assert.AreEqual(6 + 4, generator.ProcessedTokens, "the prompt, then one token for each of the 4 steps after the first");

        generator.RewindTo(8);
        generator.Append([1, 2, 3]);
        generator.GenerateAll();
        Assert.AreEqual(10 + (3 + 1) + 4, generator.ProcessedTokens, "the 3 new tokens and the last kept one, then one per step");

        using var recompute = model.CreateGenerator(Greedy, new GeneratorOptions { UseKvCache = false });
        recompute.Append([4, 8, 15]);
        recompute.GenerateAll();
        Assert.AreEqual(3 + 4 + 5 + 6 + 7, recompute.ProcessedTokens, "without the cache every step feeds the whole sequence");
    }

    [TestMethod]
    public void SetOptionsSeedsAfreshAndChangesTheLimits()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 22);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp));
        var sampling = new GenerationOptions { Temperature = 1.5, TopK = 0, Seed = 7, MaxNewTokens = 8 };
        using var generator = model.CreateGenerator(sampling);
        generator.Append([3, 1, 4, 1, 5]);
        var first = generator.GenerateAll()[0].NewIds.ToArray();

        generator.RewindTo(5);
        generator.SetOptions(sampling);
        Assert.AreSame(sampling, generator.Options);
        generator.Append([9]);
        var resumed = generator.GenerateAll()[0];

        using var straight = model.CreateGenerator(sampling);
        straight.Append([3, 1, 4, 1, 5, 9]);
        CollectionAssert.AreEqual(straight.GenerateAll()[0].NewIds.ToArray(), resumed.NewIds.ToArray(), "a fresh sampler from the same seed");
        Assert.AreEqual(8, first.Length);

        generator.SetOptions(Greedy with { MaxNewTokens = 2 });
        generator.Append([2]);
        var limited = generator.GenerateAll()[0];
        Assert.AreEqual(2, limited.NewTokens);
        Assert.AreEqual(FinishReason.MaxNewTokens, limited.FinishReason);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => generator.SetOptions(Greedy with { TopP = 2 }));
        var e = Assert.ThrowsExactly<OnnxGptException>(() => generator.SetOptions(Greedy with { StopStrings = ["x"] }));
        StringAssert.Contains(e.Message, "no tokenizer");
    }
}

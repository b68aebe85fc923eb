using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>The per-token path allocates (next to) nothing on the managed heap, however long the context.</summary>
[TestClass]
public sealed class AllocationTests
{
    private const double BoundBytesPerToken = 1024;

    [TestMethod]
    [DataRow(1, true, false, false)]
    [DataRow(3, true, false, false)]
    [DataRow(1, false, false, false)]
    [DataRow(2, true, true, false)]
    [DataRow(1, true, false, true)]
    [DataRow(3, true, false, true)]
    [DataRow(2, true, true, true)]
    public void SteadyStateTokenAllocatesUnderOneKibAtShortAndLongContext(int batch, bool useCache, bool text, bool fused)
    {
        var config = new GptConfig { VocabSize = 500, ContextLength = 160, Width = 32, Layers = 2, Heads = 4 };
        var weights = TestWeights.Random(config, seed: 51, scale: 0.1);
        using var tmp = TestPaths.NewTemp();
        // With text, each token's piece is one short string (a character tokenizer over 500 letters).
        var tokenizer = text
            ? new TokenizerSpec { Kind = TokenizerSpec.CharKind, Characters = Enumerable.Range(0, 500).Select(i => ((char)(0x100 + i)).ToString()).ToArray() }
            : null;
        var graph = new GraphOptions { Flavor = fused ? GraphFlavor.Fused : GraphFlavor.Portable };
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: new ExportOptions { Tokenizer = tokenizer, Graph = graph }));
        using var generator = model.CreateGenerator(
            new GenerationOptions { DoSample = false, MaxNewTokens = 150 }, new GeneratorOptions { UseKvCache = useCache });
        generator.AppendBatch(Enumerable.Range(0, batch).Select(b => Enumerable.Range(1, 6 + b).ToArray()).ToArray());

        // Steady state per token: the least of three 8-token windows, so that a one-off allocation on this thread
        // (seen once in a loaded full run: 48 -> 360 B/token in one window, 48 -> 48 when rerun) does not count as
        // growth with context, while anything every token allocates still shows in every window.
        Step(generator, 8);                          // prefill and warm-up
        double early = LeastOf(generator, 3, 8);     // context ~ 16..40
        Step(generator, 80);
        double late = LeastOf(generator, 3, 8);      // context ~ 120..144
        Assert.IsFalse(generator.IsDone, "test setup: generation must still be running");

        Assert.AreEqual(text, generator.GetText(0) is not null);
        Assert.AreEqual(fused, generator.Cache!.IsInPlace);
        Console.WriteLine($"batch {batch}, cache {useCache}, text {text}, fused {fused}: {early:F1} bytes/token early, {late:F1} late");
        Assert.IsLessThan(BoundBytesPerToken, early, $"{early:F1} managed bytes per token at short context");
        Assert.IsLessThan(BoundBytesPerToken, late, $"{late:F1} managed bytes per token at long context");
        Assert.IsLessThanOrEqualTo(early + 16, late, $"allocation grows with context: {early:F1} -> {late:F1} bytes per token");
    }

    private static void Step(Generator generator, int tokens)
    {
        for (int i = 0; i < tokens; i++)
        {
            generator.GenerateNextToken();
        }
    }

    private static double LeastOf(Generator generator, int windows, int tokens)
    {
        double least = double.MaxValue;
        for (int i = 0; i < windows; i++)
        {
            least = Math.Min(least, Measure(generator, tokens));
        }

        return least;
    }

    private static double Measure(Generator generator, int tokens)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        Step(generator, tokens);
        return (GC.GetAllocatedBytesForCurrentThread() - before) / (double)tokens;
    }
}

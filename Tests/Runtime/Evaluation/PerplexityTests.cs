using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter.Reference;
using OnnxGpt.Exporter;
using OnnxGpt.Runtime.Evaluation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Evaluation;

[TestClass]
public sealed class PerplexityTests
{
    [TestMethod]
    [DataRow(10, null, 1, false)]     // shorter than the context (24): one window
    [DataRow(50, 8, 5, false)]        // sliding: windows start every 8 tokens until one reaches the end
    [DataRow(50, null, 4, false)]     // default stride: half the context
    [DataRow(50, 24, 3, false)]       // stride = context: disjoint windows, as a trainer evaluates
    [DataRow(50, 8, 5, true)]         // the fused graph: every position's logits (num_logits_to_keep 0)
    public void MeanNllEqualsTheReferenceOverTheSameWindows(int length, int? stride, int windows, bool fused)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2), seed: 71);
        using var tmp = TestPaths.NewTemp();
        var graph = new GraphOptions { Flavor = fused ? GraphFlavor.Fused : GraphFlavor.Portable };
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: new ExportOptions { Graph = graph }));
        Assert.AreEqual(fused, model.Signature.HasLogitsToKeep);
        var tokens = Enumerable.Range(0, length).Select(i => (i * 31 + 7) % 53).ToArray();

        var result = Perplexity.Evaluate(model, tokens, stride);

        // The reference, window by window: each token scored once, by the first window whose logits predict it
        // (a window's last logits predict the token just after it).
        int context = 24, step = stride ?? 12, scoredUpTo = 1, count = 0, seen = 0;
        double total = 0;
        for (int begin = 0; ; begin += step)
        {
            int end = Math.Min(begin + context, length);
            var logits = ReferenceGpt.Logits(weights, [tokens[begin..end].Select(t => (long)t).ToArray()])[0];
            for (int target = Math.Max(scoredUpTo, begin + 1); target <= Math.Min(end, length - 1); target++)
            {
                total += Perplexity.NegativeLogLikelihood(logits[target - begin - 1], tokens[target]);
                count++;
            }

            seen++;
            scoredUpTo = Math.Min(end + 1, length);
            if (scoredUpTo == length)
            {
                break;
            }
        }

        Assert.AreEqual(length - 1, result.Tokens, "every token after the first is scored once");
        Assert.AreEqual(count, result.Tokens);
        Assert.AreEqual(windows, result.Windows);
        Assert.AreEqual(seen, result.Windows);
        Assert.AreEqual(total / count, result.MeanNll, 1e-4, "mean NLL against the reference");
        Assert.AreEqual(Math.Exp(result.MeanNll), result.Perplexity, 1e-9);
        Assert.IsGreaterThan(0.0, result.MeanNll);
    }

    [TestMethod]
    public void OneTokenCannotBeScored()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 72);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp));
        var e = Assert.ThrowsExactly<ArgumentException>(() => Perplexity.Evaluate(model, [5]));
        StringAssert.Contains(e.Message, "at least two tokens");
        Assert.ThrowsExactly<OnnxGptException>(() => Perplexity.Evaluate(model, [5, 99]));
    }
}

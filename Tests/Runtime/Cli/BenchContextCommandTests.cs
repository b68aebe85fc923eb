using System.Globalization;
using System.Text.RegularExpressions;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary><c>bench context</c>: a row per model with its speed at each length and the per-block ratio; a length past the context is a usage error.</summary>
[TestClass]
public sealed partial class BenchContextCommandTests
{
    [TestMethod]
    public void EveryModelGetsARowWithItsSpeedsAndRatio()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: 32) with { ContextLength = 64 }, seed: 181);
        using var tmp = TestPaths.NewTemp();
        var fused = new GraphOptions { Flavor = GraphFlavor.Fused };
        string plain = TestModels.Export(weights, tmp, "fp32", new ExportOptions { Graph = fused });
        string halves = TestModels.Export(weights, tmp, "kv16", new ExportOptions { Graph = fused with { Float16Cache = true } });
        var (code, output, err) = ExportCommandTests.Cli("bench", "context", "--model", plain, "--model", halves, "--contexts", "4,24", "--block", "4", "--blocks", "3");
        Assert.AreEqual(0, code, err);
        foreach (string model in new[] { plain, halves })
        {
            var row = Row().Match(output[output.IndexOf($"| {model} |", StringComparison.Ordinal)..]);
            Assert.IsTrue(row.Success, output);
            double ratio = double.Parse(row.Groups["ratio"].Value, CultureInfo.InvariantCulture);
            double measured = double.Parse(row.Groups["long"].Value, CultureInfo.InvariantCulture) / double.Parse(row.Groups["short"].Value, CultureInfo.InvariantCulture);
            Assert.IsTrue(ratio > 0 && double.IsFinite(ratio), $"{model}: ratio {ratio}");   // (its size is the machine's business)
            Assert.IsGreaterThan(0.0, measured);
        }

        (code, _, err) = ExportCommandTests.Cli("bench", "context", "--model", plain, "--contexts", "4,60", "--block", "8");
        Assert.AreEqual(2, code, err);
        StringAssert.Contains(err, "--contexts: 60 tokens and a block of 8 need 69 positions");
    }

    [GeneratedRegex(@"^\| \S+ \| (?<short>[\d.]+) \| (?<long>[\d.]+) \| (?<ratio>[\d.]+) \[")]
    private static partial Regex Row();
}

using System.Text.Json;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary>
/// Speculative decoding on the command line: <c>generate --draft/--prompt-lookup</c> gives the plain greedy ids,
/// <c>bench speculative</c> reports both runs and finds them identical, and the options' rules are usage errors.
/// </summary>
[TestClass]
public sealed class SpeculativeCommandTests
{
    private static (int Code, string Out, string Err) Cli(params string[] args) => ExportCommandTests.Cli(args);

    [TestMethod]
    public void GenerateWithADraftOrPromptLookupPrintsThePlainGreedyIds()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 4, width: 32) with { ContextLength = 48 }, seed: 171);
        using var tmp = TestPaths.NewTemp();
        string fused = TestModels.Export(weights, tmp, "fused", new ExportOptions { Graph = new GraphOptions { Flavor = GraphFlavor.Fused } });
        string int4 = TestModels.Export(weights, tmp, "int4",
            new ExportOptions { Graph = new GraphOptions { Flavor = GraphFlavor.Fused, Quantization = WeightQuantization.Int4 } });
        string[] common = ["generate", "--model", fused, "--ids", "5,17,3,52,9", "--max-new-tokens", "30", "--greedy", "--json"];
        var (code, plain, err) = Cli(common);
        Assert.AreEqual(0, code, err);
        foreach (var extra in new[] { new[] { "--draft", int4 }, ["--prompt-lookup", "3", "--draft-tokens", "4"], ["--draft", int4, "--prompt-lookup", "2"] })
        {
            var (c, output, e) = Cli([.. common, .. extra]);
            Assert.AreEqual(0, c, e);
            Assert.AreEqual(Ids(plain), Ids(output), string.Join(" ", extra));
            StringAssert.Contains(e, "speculative:", "stderr reports the verifying steps and the acceptance");
        }
    }

    [TestMethod]
    public void BenchSpeculativeReportsBothRunsAndIdenticalTokens()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 4, width: 32) with { ContextLength = 64 }, seed: 172);
        using var tmp = TestPaths.NewTemp();
        string fused = TestModels.Export(weights, tmp, "fused", new ExportOptions { Graph = new GraphOptions { Flavor = GraphFlavor.Fused } });
        var (code, output, err) = Cli("bench", "speculative", "--model", fused, "--prompt-lookup", "2", "--prompt-tokens", "8",
            "--new-tokens", "24", "--reps", "2", "--json");
        Assert.AreEqual(0, code, err);
        var lines = output.Trim().Split('\n');
        Assert.HasCount(5, lines, output);   // 2 reps x (plain, speculative), then the summary
        using var summary = JsonDocument.Parse(lines[^1]);
        Assert.IsTrue(summary.RootElement.GetProperty("identical_tokens").GetBoolean());
        Assert.IsGreaterThan(0.0, summary.RootElement.GetProperty("speculative_tokens_per_second").GetDouble());
        Assert.IsGreaterThan(0L, summary.RootElement.GetProperty("verifying_steps").GetInt64());
    }

    [TestMethod]
    public void SpeculationOptionsOutOfPlaceAreUsageErrors()
    {
        var (code, _, err) = Cli("generate", "--model", "m", "--prompts-file", "p.txt", "--prompt-lookup", "2");
        Assert.AreEqual(2, code, err);
        StringAssert.Contains(err, "--prompts-file runs a batch");
        (code, _, err) = Cli("generate", "--model", "m", "--prompt", "x", "--draft-tokens", "3");
        Assert.AreEqual(2, code, err);
        StringAssert.Contains(err, "--draft-tokens needs --draft or --prompt-lookup");
        (code, _, err) = Cli("bench", "speculative", "--model", "m");
        Assert.AreEqual(2, code, err);
        StringAssert.Contains(err, "--draft DIR and/or --prompt-lookup N");
        (code, _, err) = Cli("generate", "--model", "m", "--prompt", "x", "--draft-tokens", "16", "--prompt-lookup", "2");
        Assert.AreEqual(2, code, err);
    }

    private static string Ids(string json)
    {
        using var doc = JsonDocument.Parse(json.Trim());
        return string.Join(",", doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()));
    }
}

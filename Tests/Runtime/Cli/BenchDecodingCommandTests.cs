using System.Globalization;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary><c>onnxgpt bench decoding</c> on the nano preset: its table, what beam search reports copying, and its option checks.</summary>
[TestClass]
public sealed class BenchDecodingCommandTests
{
    private static (int Code, string Out, string Err) Cli(params string[] args) => ExportCommandTests.Cli(args);

    [TestMethod]
    public void TableHasEveryRunAgainstGreedyAndTheBeamsCopies()
    {
        using var tmp = TestPaths.NewTemp();
        var (code, output, err) = Cli("bench", "decoding", "--preset", "nano", "--work", tmp.Sub("work"), "--variants", "fused",
            "--prompt-length", "6", "--new-tokens", "8", "--reps", "1", "--threads", "1");
        Assert.AreEqual(0, code, err);
        var rows = output.Split('\n').Where(l => l.StartsWith("| ", StringComparison.Ordinal) && !l.StartsWith("| fused run", StringComparison.Ordinal))
            .Select(l => l.Trim().Trim('|').Split('|').Select(c => c.Trim()).ToArray()).ToList();
        CollectionAssert.AreEqual(new[] { "greedy", "openai options", "greedy + top_logprobs 5", "n = 4 sampled", "4 beams" }, rows.Select(r => r[0]).ToArray(), output);
        Assert.AreEqual("1.000", rows[0][2], "greedy against itself");
        Assert.IsLessThan(1024.0, double.Parse(rows[0][3], CultureInfo.InvariantCulture), "greedy allocates (next to) nothing per step");
        double copied = double.Parse(rows[4][4].Split(' ')[0], CultureInfo.InvariantCulture);
        Assert.IsGreaterThan(0.0, copied, "the beams copy some of the cache");
        Assert.IsLessThan(3.0 * (6 + 8), copied, "but less than three whole rows per step");
        Assert.AreEqual("0", rows[3][4], "n samples copy only at the fork, before the timed steps");
    }

    [TestMethod]
    public void OptionsAreChecked()
    {
        using var tmp = TestPaths.NewTemp();
        var (code, _, err) = Cli("bench", "decoding", "--work", tmp.Sub("w"), "--variants", "fused,fp8");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "'fp8' is not a variant");
        (code, _, err) = Cli("bench", "decoding", "--work", tmp.Sub("w"), "--preset", "nano", "--prompt-length", "30", "--new-tokens", "8");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "exceed the model's context of 32 tokens");
        Assert.IsFalse(Directory.Exists(tmp.Sub("w")) && Directory.EnumerateFileSystemEntries(tmp.Sub("w")).Any(), "nothing exported");
    }
}

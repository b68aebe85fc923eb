using System.Text.Json;
using OnnxGpt.Cli.Benchmarking;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary>
/// <c>onnxgpt bench compare</c>, the side-by-side benchmark that used to be a program of its own: its child
/// measurement, its options, and the llamabench runner on a work folder it has not used yet.
/// </summary>
[TestClass]
public sealed class BenchCompareCommandTests
{
    private static (int Code, string Out, string Err) Cli(params string[] args) => ExportCommandTests.Cli(args);

    [TestMethod]
    public void AChildMeasuresOneEngineOnOneFolder()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 87);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.Export(weights, tmp);
        var (code, output, err) = Cli("bench", "compare", "--child", "onnxgpt", "--model", folder, "--variant-name", "portable",
            "--work", tmp.Sub("work"), "--prompt", "6", "--contexts", "4,12", "--new-tokens", "4", "--threads", "1");
        Assert.AreEqual(0, code, err);
        string line = output.Split('\n').Single(l => l.StartsWith("RESULT ", StringComparison.Ordinal));
        var m = JsonSerializer.Deserialize<EngineMeasurement>(line["RESULT ".Length..])!;
        Assert.AreEqual("onnxgpt", m.Engine);
        Assert.AreEqual("portable", m.Variant);
        Assert.AreEqual(6, m.PromptTokens);
        CollectionAssert.AreEquivalent(new[] { 4, 12 }, m.DecodeTokensPerSecond.Keys.ToArray());
        Assert.IsTrue(m.DecodeTokensPerSecond.Values.All(v => v > 0 && double.IsFinite(v)));
        Assert.IsGreaterThan(0.0, m.TimeToFirstTokenMs);
        Assert.IsGreaterThanOrEqualTo(48, m.WarmUpTokens, "decoding warms up until the JIT is quiet, at least 48 tokens");
    }

    [TestMethod]
    public void OptionsAreCheckedBeforeAnythingIsExported()
    {
        using var tmp = TestPaths.NewTemp();
        var (code, _, err) = Cli("bench", "compare", "--work", tmp.Sub("w"), "--variants", "fused,fp8");
        Assert.AreEqual(2, code);
        Assert.AreEqual("onnxgpt bench compare: --variants: 'fp8' is not a variant; expected portable, decomposed, fused, int8, int4, fused-kv16, int4-kv16." + Environment.NewLine, err);

        (code, _, err) = Cli("bench", "compare", "--work", tmp.Sub("w"), "--engines", "onnxgpt,genai");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "'genai' is not an engine this program runs");
        StringAssert.Contains(err, "build.ps1 bench");

        (code, _, err) = Cli("bench", "compare", "--work", tmp.Sub("w"), "--preset", "nano", "--contexts", "16,30");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "--contexts: context 30 leaves no room");

        (code, _, err) = Cli("bench", "compare", "--work", tmp.Sub("w"), "--llamabench", tmp.Sub("no-llamabench.dll"));
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "--llamabench:");
        Assert.IsFalse(Directory.Exists(tmp.Sub("w")), "nothing was exported");
    }

    [TestMethod]
    public void LlamaBenchOnAFreshWorkFolderFailsWithItsOwnErrorNotAMissingFolder()
    {
        // It used to delete work/llamabench/results.json before the folder existed: DirectoryNotFoundException.
        using var tmp = TestPaths.NewTemp();
        string notAProgram = tmp.Sub("llamabench.dll");
        File.WriteAllText(notAProgram, "not an assembly");
        var settings = new ComparisonSettings { Work = tmp.Sub("fresh-work"), LlamaBench = notAProgram, Threads = 1 };
        var e = Assert.ThrowsExactly<OnnxGptException>(() => LlamaBenchRunner.Run(settings, ["fused"], 1.0));
        StringAssert.Contains(e.Message, "llamabench failed");
        Assert.IsTrue(Directory.Exists(Path.Combine(tmp.Sub("fresh-work"), "llamabench")));
    }
}

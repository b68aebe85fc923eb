using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary><c>onnxgpt bench --ort-profile</c>: the run under ONNX Runtime's profiler and its per-operator summary.</summary>
[TestClass]
public sealed class BenchProfileTests
{
    [TestMethod]
    public void ProfiledBenchSumsKernelsPerKindOfRun()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 88);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.Export(weights, tmp, options: new ExportOptions { Graph = new GraphOptions { Flavor = GraphFlavor.Fused } });
        string profiles = tmp.Sub("profiles");
        Directory.CreateDirectory(profiles);
        var (code, output, err) = ExportCommandTests.Cli("bench", "--model", folder, "--prompt-lengths", "4,12", "--new-tokens", "5",
            "--threads", "1", "--ort-profile", Path.Combine(profiles, "run"));
        Assert.AreEqual(0, code, err);

        // Each prompt is one run; after it, 2 warm-up and 5 timed steps, told apart by the context they attend over.
        StringAssert.Contains(output, "prompt of 4 tokens: 1 runs");
        StringAssert.Contains(output, "prompt of 12 tokens: 1 runs");
        StringAssert.Contains(output, "decode @4: 7 runs");
        StringAssert.Contains(output, "decode @12: 7 runs");
        StringAssert.Contains(output, "(warm-up)", "the throwaway run's steps stay below the shortest prompt");
        StringAssert.Contains(output, "GroupQueryAttention");
        Assert.HasCount(1, Directory.GetFiles(profiles, "run_*.json"));
        Assert.IsFalse(output.Contains(" off ", StringComparison.Ordinal), "no runs without the cache while profiling:\n" + output);
    }
}

using System.Text.Json;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary><c>onnxgpt generate</c> and <c>inspect</c> take a folder made by another tool as they take ours.</summary>
[TestClass]
public sealed class ForeignFolderCommandTests
{
    private static (int Code, string Out, string Err) Cli(params string[] args) => ExportCommandTests.Cli(args);

    [TestMethod]
    public void GenerateOnATransformersJsFolderWritesWhatOurExportWrites()
    {
        using var tmp = TestPaths.NewTemp();
        Assert.AreEqual(0, Cli("export", "--hf", TestPaths.TinyRandomGpt2, "--out", tmp.Sub("ours")).Code);
        string js = ForeignFolders.TransformersJs(tmp, "model_quantized.onnx");
        string[] args = ["--prompt", "Hello world, this is", "--max-new-tokens", "6", "--greedy", "--json"];
        var ours = Cli(["generate", "--model", tmp.Sub("ours"), .. args]);
        var theirs = Cli(["generate", "--model", js, .. args]);
        Assert.AreEqual(0, ours.Code, ours.Err);
        Assert.AreEqual(0, theirs.Code, theirs.Err);
        using var a = JsonDocument.Parse(ours.Out.Trim());
        using var b = JsonDocument.Parse(theirs.Out.Trim());
        Assert.AreEqual(a.RootElement.GetProperty("text").GetString(), b.RootElement.GetProperty("text").GetString());
        CollectionAssert.AreEqual(
            a.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
            b.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
    }

    [TestMethod]
    public void EvalOnAnOptimumPairScoresWhatOurExportScores()
    {
        using var tmp = TestPaths.NewTemp();
        Assert.AreEqual(0, Cli("export", "--hf", TestPaths.TinyRandomGpt2, "--out", tmp.Sub("ours")).Code);
        string pair = ForeignFolders.OptimumPair(tmp);
        string[] args = ["--ids", "5,17,3,51,0,9,8,41,2,7,600,12", "--json"];
        var ours = Cli(["eval", "--model", tmp.Sub("ours"), .. args]);
        var theirs = Cli(["eval", "--model", pair, .. args]);
        Assert.AreEqual(0, ours.Code, ours.Err);
        Assert.AreEqual(0, theirs.Code, theirs.Err);
        using var a = JsonDocument.Parse(ours.Out.Trim());
        using var b = JsonDocument.Parse(theirs.Out.Trim());
        Assert.AreEqual(11, b.RootElement.GetProperty("tokens").GetInt32());
        double expected = a.RootElement.GetProperty("mean_nll").GetDouble(), found = b.RootElement.GetProperty("mean_nll").GetDouble();
        Assert.AreEqual(expected, found, 1e-6, $"mean NLL: ours {expected}, the pair's {found}");
    }

    [TestMethod]
    public void InspectNamesTheLayoutAndItsFiles()
    {
        using var tmp = TestPaths.NewTemp();
        string js = ForeignFolders.TransformersJs(tmp, "model_quantized.onnx");
        var (code, text, err) = Cli("inspect", js);
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(text, $"layout: TransformersJs: model_quantized.onnx (description and tokenizer in {js})");
        StringAssert.Contains(text, "past_key_values.{i}.key");

        (code, text, err) = Cli("inspect", ForeignFolders.OptimumPair(tmp));
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(text, "layout: Optimum: decoder_model.onnx (first step) + decoder_with_past_model.onnx");

        Directory.CreateDirectory(tmp.Sub("empty"));
        (code, _, err) = Cli("inspect", tmp.Sub("empty"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(err, "holds no model in a layout this runtime recognises; it holds nothing");
    }
}

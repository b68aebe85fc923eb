using OnnxGpt.Cli;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter.Reference;
using OnnxGpt.Tests.Exporter.Onnx;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

[TestClass]
public sealed class ExportCommandTests
{
    internal static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [TestMethod]
    public void RealHuggingFaceCheckpointExportsAndMatchesReference()
    {
        using var tmp = TestPaths.NewTemp();
        var (code, _, err) = Cli("export", "--hf", TestPaths.TinyRandomGpt2, "--out", tmp.Sub("m"));
        Assert.AreEqual(0, code, err);

        var weights = HfCheckpoint.Load(TestPaths.TinyRandomGpt2);
        using var ort = new OrtGpt(Path.Combine(tmp.Sub("m"), ModelFolder.ModelFile));
        long[][] ids = [[98, 12, 500, 7, 999, 0, 34, 98], [98, 98, 98, 1, 2, 3, 4, 5]];
        long[][] mask = [[1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1]];
        long[][] pos = [[0, 1, 2, 3, 4, 5, 6, 7], [1, 1, 0, 1, 2, 3, 4, 5]];
        GptGraphTests.AssertLogitsEqual(ReferenceGpt.Logits(weights, ids, mask, pos), ort.Run(ids, mask, pos, null, 0).Logits, mask, "tiny-random-gpt2");

        // The tokenizer files travel with the model and the metadata names them.
        Assert.IsTrue(File.Exists(Path.Combine(tmp.Sub("m"), "tokenizer.json")));
        var spec = TokenizerSpec.FromJson(ModelInspector.Open(tmp.Sub("m")).Metadata[MetadataKeys.Tokenizer]);
        Assert.AreEqual(TokenizerSpec.TokenizerJsonKind, spec.Kind);
    }

    [TestMethod]
    public void SameSeedGivesByteIdenticalModel()
    {
        using var tmp = TestPaths.NewTemp();
        Assert.AreEqual(0, Cli("export", "--preset", "tiny", "--seed", "7", "--out", tmp.Sub("a")).Code);
        Assert.AreEqual(0, Cli("export", "--preset", "tiny", "--seed", "7", "--out", tmp.Sub("b")).Code);
        Assert.AreEqual(0, Cli("export", "--preset", "tiny", "--seed", "8", "--out", tmp.Sub("c")).Code);
        var a = File.ReadAllBytes(Path.Combine(tmp.Sub("a"), ModelFolder.ModelFile));
        CollectionAssert.AreEqual(a, File.ReadAllBytes(Path.Combine(tmp.Sub("b"), ModelFolder.ModelFile)), "same seed, same bytes");
        CollectionAssert.AreNotEqual(a, File.ReadAllBytes(Path.Combine(tmp.Sub("c"), ModelFolder.ModelFile)), "another seed, other weights");
    }

    [TestMethod]
    public void ExistingFolderNeedsForce()
    {
        using var tmp = TestPaths.NewTemp();
        Assert.AreEqual(0, Cli("export", "--preset", "nano", "--out", tmp.Sub("m")).Code);
        var (code, _, err) = Cli("export", "--preset", "nano", "--seed", "2", "--out", tmp.Sub("m"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(err, "--force");
        Assert.DoesNotContain("ExportOptions", err, "the flag, not the C# property");
        Assert.AreEqual(0, Cli("export", "--preset", "nano", "--seed", "2", "--out", tmp.Sub("m"), "--force").Code);
    }

    [TestMethod]
    [DataRow(new[] { "export", "--out", "x" }, "exactly one of --preset, --config, --checkpoint (--hf)")]
    [DataRow(new[] { "export", "--preset", "gpt5", "--out", "x" }, "--preset must be one of gpt2, gpt2-medium")]
    [DataRow(new[] { "export", "--preset", "nano", "--out", "x", "--quantize", "int4" }, "--quantize needs --graph fused")]
    [DataRow(new[] { "export", "--preset", "nano", "--out", "x", "--kv-cache", "fp16" }, "--kv-cache fp16 needs --graph fused")]
    [DataRow(new[] { "export", "--preset", "nano", "--out", "x", "--graph", "fused", "--dtype", "fp16", "--kv-cache", "fp16" }, "the cache is float16 already")]
    [DataRow(new[] { "export", "--preset", "nano", "--out", "x", "--kv-cache", "int8" }, "--kv-cache must be one of fp32, fp16")]
    [DataRow(new[] { "export", "--preset", "nano", "--out", "x", "--graph", "fast" }, "--graph must be one of portable, fused")]
    [DataRow(new[] { "export", "--preset", "nano", "--out", "x", "--bogus", "1" }, "unknown option '--bogus'")]
    [DataRow(new[] { "export", "--hf", "no/such/folder", "--out", "x" }, "no/such/folder")]
    public void BadUsageIsExplained(string[] args, string expected)
    {
        var (code, _, err) = Cli(args);
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(err, expected);
    }

    [TestMethod]
    public void FusedInt4ExportOfTheRealCheckpointLoads()
    {
        using var tmp = TestPaths.NewTemp();
        var (code, _, err) = Cli("export", "--hf", TestPaths.TinyRandomGpt2, "--out", tmp.Sub("m"), "--graph", "fused", "--quantize", "int4");
        Assert.AreEqual(0, code, err);
        var info = ModelInspector.Open(tmp.Sub("m"));
        Assert.AreEqual("fused", info.Metadata[MetadataKeys.GraphFlavor]);
        Assert.AreEqual(4 * 5 + 1, info.OperatorCounts.Single(o => o.Op == "com.microsoft.MatMulNBits").Count, "c_attn, attn.c_proj, c_fc, mlp.c_proj in each of 5 layers, and the head");
        using var ort = new FusedOrtGpt(Path.Combine(tmp.Sub("m"), ModelFolder.ModelFile), batch: 1, capacity: 4);
        float[] logits = ort.Run([[98, 5, 6]], [[1, 1, 1]], [[0, 1, 2]], logitsToKeep: 1);
        Assert.AreEqual(1000, logits.Length);
        Assert.IsTrue(logits.All(float.IsFinite));
    }

    [TestMethod]
    public void InspectPrintsShapesOperatorsAndMetadata()
    {
        using var tmp = TestPaths.NewTemp();
        Assert.AreEqual(0, Cli("export", "--hf", TestPaths.TinyRandomGpt2, "--out", tmp.Sub("m")).Code);
        var (code, text, _) = Cli("inspect", tmp.Sub("m"));
        Assert.AreEqual(0, code);
        StringAssert.Contains(text, "input_ids");
        StringAssert.Contains(text, "int64 [batch_size, sequence_length]");
        StringAssert.Contains(text, "present.{i}.value (i = 0..4)");
        StringAssert.Contains(text, "float [batch_size, 4, total_sequence_length, 8]");
        StringAssert.Contains(text, "onnxgpt.config");
        StringAssert.Contains(text, $"parameters  {HfCheckpoint.Load(TestPaths.TinyRandomGpt2).Config.ParameterCount:N0}");

        (code, text, _) = Cli("inspect", tmp.Sub("m"), "--load");
        Assert.AreEqual(0, code);
        StringAssert.Contains(text, "loaded by ONNX Runtime");
    }

    [TestMethod]
    public void InspectOfAFileThatIsNotAModelNamesIt()
    {
        using var tmp = TestPaths.NewTemp();
        File.WriteAllBytes(tmp.Sub("model.onnx"), [0xFF, 0xFF, 0xFF, 0x01, 0x02]);
        var (code, _, err) = Cli("inspect", tmp.Sub("model.onnx"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(err, tmp.Sub("model.onnx"));
    }
}

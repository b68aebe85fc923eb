using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter.Reference;
using OnnxGpt.Exporter;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Exporter.Onnx;

[TestClass]
public sealed class GptExporterTests
{
    [TestMethod]
    public void ExternalDataOnRequestLoadsAndMatchesReference()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2), seed: 3);
        using var tmp = TestPaths.NewTemp();
        var result = GptExporter.Export(weights, tmp.Sub("m"), new ExportOptions { ExternalData = ExternalDataMode.Always });

        Assert.IsNotNull(result.ExternalDataPath);
        Assert.IsTrue(File.Exists(result.ExternalDataPath));
        long weightBytes = weights.Names.Sum(n => weights[n].Length * 4);
        Assert.IsGreaterThanOrEqualTo(weightBytes, result.ExternalDataBytes, "every weight byte is in the data file");
        Assert.IsLessThan(20_000, result.ModelBytes, $"model.onnx should hold only the graph, found {result.ModelBytes} bytes");

        using var ort = new OrtGpt(result.ModelPath);
        long[][] ids = [[3, 1, 4, 1, 5, 9]];
        long[][] mask = [[1, 1, 1, 1, 1, 1]];
        long[][] pos = [[0, 1, 2, 3, 4, 5]];
        GptGraphTests.AssertLogitsEqual(ReferenceGpt.Logits(weights, ids), ort.Run(ids, mask, pos, null, 0).Logits, mask, "external data");
    }

    [TestMethod]
    public void InlineExportRemovesStaleExternalData()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 4);
        using var tmp = TestPaths.NewTemp();
        GptExporter.Export(weights, tmp.Sub("m"), new ExportOptions { ExternalData = ExternalDataMode.Always });
        var inline = GptExporter.Export(weights, tmp.Sub("m"), new ExportOptions { Force = true });
        Assert.IsNull(inline.ExternalDataPath);
        Assert.IsFalse(File.Exists(Path.Combine(tmp.Sub("m"), ModelFolder.ExternalDataFile)));
    }

    [TestMethod]
    public void ExistingFolderIsNotOverwrittenWithoutForce()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 5);
        using var tmp = TestPaths.NewTemp();
        GptExporter.Export(weights, tmp.Sub("m"));
        var before = File.ReadAllBytes(Path.Combine(tmp.Sub("m"), ModelFolder.ModelFile));
        var other = TestWeights.Random(TestWeights.Small(), seed: 6);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptExporter.Export(other, tmp.Sub("m")));
        StringAssert.Contains(e.Message, tmp.Sub("m"));
        StringAssert.Contains(e.Message, "--force");
        CollectionAssert.AreEqual(before, File.ReadAllBytes(Path.Combine(tmp.Sub("m"), ModelFolder.ModelFile)), "the existing model is untouched");
    }

    [TestMethod]
    public void UnwritableOutputPathIsNamed()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 5);
        using var tmp = TestPaths.NewTemp();
        File.WriteAllText(tmp.Sub("file"), "x");
        // A folder below a regular file can never be created, whatever the user's permissions.
        string target = Path.Combine(tmp.Sub("file"), "model");
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptExporter.Export(weights, target));
        StringAssert.Contains(e.Message, target);
    }

    [TestMethod]
    public void ModelDescribesItselfForNetronAndHosts()
    {
        var config = TestWeights.Small(heads: 2) with { BosTokenId = 1, EosTokenId = 2 };
        var weights = TestWeights.Random(config, seed: 8);
        using var tmp = TestPaths.NewTemp();
        var spec = new TokenizerSpec { Kind = TokenizerSpec.CharKind, Characters = Enumerable.Range(0, 53).Select(i => ((char)('!' + i)).ToString()).ToList() };
        GptExporter.Export(weights, tmp.Sub("m"), new ExportOptions { Tokenizer = spec, Source = "test weights" });

        var info = ModelInspector.Open(tmp.Sub("m"));
        Assert.AreEqual(config, GptConfig.FromJson(info.Metadata[MetadataKeys.Config]));
        Assert.AreEqual(spec.ToJson(), TokenizerSpec.FromJson(info.Metadata[MetadataKeys.Tokenizer]).ToJson());
        Assert.AreEqual(IoConventions.Optimum, info.Metadata[MetadataKeys.IoConvention]);
        Assert.AreEqual("2", info.Metadata[MetadataKeys.EosTokenId]);
        Assert.AreEqual("OnnxGpt", info.Model.ProducerName);
        StringAssert.Contains(info.Model.Graph.DocString, "test weights");
        Assert.AreEqual(config.ParameterCount, info.ParameterCount, "the weight initializers are exactly the parameters, the tied head stored once");
    }

    [TestMethod]
    public void NodesAreNamedByScopeAndInitializersKeepCheckpointNames()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2), seed: 9);
        using var tmp = TestPaths.NewTemp();
        GptExporter.Export(weights, tmp.Sub("m"));
        var graph = ModelInspector.Open(tmp.Sub("m")).Model.Graph;
        var nodes = graph.Node.Select(n => n.Name).ToHashSet();
        foreach (var expected in new[]
        {
            "/model/embed/wte/Gather", "/model/embed/wpe/Gather", "/model/layers.0/ln_1/LayerNormalization",
            "/model/layers.0/attn/c_attn/MatMul", "/model/layers.0/attn/Softmax", "/model/layers.1/mlp/act/Gelu",
            "/model/layers.1/mlp/c_proj/MatMul", "/model/ln_f/LayerNormalization", "/model/lm_head/Gemm",
        })
        {
            Assert.Contains(expected, nodes, $"node {expected} is missing");
        }

        Assert.AreEqual(graph.Node.Count, nodes.Count, "node names are unique");
        var initializers = graph.Initializer.Select(i => i.Name).ToHashSet();
        foreach (var name in weights.Names)
        {
            Assert.Contains(name, initializers, $"initializer {name} keeps its checkpoint name");
        }

        string summary = ModelInspector.Open(tmp.Sub("m")).Summary();
        StringAssert.Contains(summary, "past_key_values.{i}.key (i = 0..1)");
        StringAssert.Contains(summary, "LayerNormalization 5");
    }
}

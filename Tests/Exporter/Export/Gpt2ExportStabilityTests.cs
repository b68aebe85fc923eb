using System.Security.Cryptography;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Exporter.Export;

/// <summary>
/// GPT-2 exports stay byte for byte what they were before the model definition grew the Llama family: the expected
/// SHA-256 hashes were recorded from exports made by main at commit 768cb52, before any of that change existed.
/// </summary>
[TestClass]
public sealed class Gpt2ExportStabilityTests
{
    [TestMethod]
    [DataRow("portable", "config.json:704734e5adf47a54 genai_config.json:b89f57ca25d353ed model.onnx:63a629076417cc32")]
    [DataRow("fused", "config.json:704734e5adf47a54 genai_config.json:6c49500fbfe2e345 model.onnx:1001634d8fa602b5")]
    [DataRow("fused-int4", "config.json:704734e5adf47a54 genai_config.json:6c49500fbfe2e345 model.onnx:b822936f403d9732")]
    [DataRow("fused-int8", "config.json:704734e5adf47a54 genai_config.json:6c49500fbfe2e345 model.onnx:25301fc607ddd834")]
    [DataRow("portable-fp16", "config.json:704734e5adf47a54 genai_config.json:b89f57ca25d353ed model.onnx:deea877714b3553c")]
    [DataRow("ort-gpt2", "config.json:704734e5adf47a54 genai_config.json:b89f57ca25d353ed model.onnx:8f3416ea6acc70cd")]
    [DataRow("merged-no-positions", "config.json:704734e5adf47a54 genai_config.json:b89f57ca25d353ed model.onnx:ed1094302fe38d83")]
    [DataRow("untied-nobias-relu", "config.json:1522cd1d2a8cbec0 genai_config.json:b89f57ca25d353ed model.onnx:587745bc7558d022 model.onnx.data:f9c7e6465bd78bac")]
    public void ExportIsByteIdenticalToMain(string variant, string expected)
    {
        var (weights, options) = Make(variant);
        using var tmp = TestPaths.NewTemp();
        string folder = tmp.Sub("m");
        GptExporter.Export(weights, folder, options);
        // Every file of the folder, by name: model.onnx, model.onnx.data (when external), config.json, genai_config.json.
        string actual = string.Join(" ", Directory.GetFiles(folder).Select(Path.GetFileName).Order(StringComparer.Ordinal)
            .Select(name => $"{name}:{Hash(folder, name!)[..16]}"));
        Assert.AreEqual(expected, actual, $"variant {variant}: the GPT-2 export changed");
    }

    private static (OnnxGpt.Exporter.Model.GptWeights, ExportOptions) Make(string variant)
    {
        var tiny = GptPresets.Get("tiny");
        var portable = new ExportOptions { Source = "preset tiny, seed 1", Tokenizer = TokenizerSpec.Gpt2 };
        return variant switch
        {
            "portable" => (SeededInit.Create(tiny, 1), portable),
            "fused" => (SeededInit.Create(tiny, 1), portable with { Graph = new GraphOptions { Flavor = GraphFlavor.Fused } }),
            "fused-int4" => (SeededInit.Create(tiny, 1), portable with { Graph = new GraphOptions { Flavor = GraphFlavor.Fused, Quantization = WeightQuantization.Int4 } }),
            "fused-int8" => (SeededInit.Create(tiny, 1), portable with { Graph = new GraphOptions { Flavor = GraphFlavor.Fused, Quantization = WeightQuantization.Int8, BlockSize = 64 } }),
            "portable-fp16" => (SeededInit.Create(tiny, 1), portable with { Graph = new GraphOptions { Precision = WeightPrecision.Float16 } }),
            "ort-gpt2" => (SeededInit.Create(tiny, 1), portable with { Graph = new GraphOptions { IoConvention = IoConventions.OrtGpt2 } }),
            "merged-no-positions" => (SeededInit.Create(tiny, 1), portable with { Graph = new GraphOptions { PositionIdsInput = false, UseCacheBranchInput = true } }),
            "untied-nobias-relu" => (SeededInit.Create(tiny with { TiedHead = false, Bias = false, Activation = Activation.Relu, InnerWidth = 96 }, 2),
                new ExportOptions { ExternalData = ExternalDataMode.Always }),
            _ => throw new ArgumentOutOfRangeException(nameof(variant), variant, "unknown variant"),
        };
    }

    private static string Hash(string folder, string file) =>
        Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(folder, file))));
}

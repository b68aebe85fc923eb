using System.Text.Json.Nodes;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Exporter.Export;

/// <summary>The <c>genai_config.json</c> every export writes (GenAiGenerationTests runs it in GenAI itself).</summary>
[TestClass]
public sealed class GenAiConfigTests
{
    [TestMethod]
    [DataRow(GraphFlavor.Portable, false)]
    [DataRow(GraphFlavor.Fused, true)]
    public void ExportWritesTheFileWithTheModelsShape(GraphFlavor flavor, bool shareBuffer)
    {
        var config = TestWeights.Small(heads: 2, width: 32, layers: 3) with { EosTokenId = 50 };
        var weights = TestWeights.Random(config, seed: 1);
        using var tmp = TestPaths.NewTemp();
        GptExporter.Export(weights, tmp.Sub("m"), new ExportOptions { Graph = new GraphOptions { Flavor = flavor } });

        var root = JsonNode.Parse(File.ReadAllText(Path.Combine(tmp.Sub("m"), ModelFolder.GenAiConfigFile)))!;
        var model = root["model"]!;
        var decoder = model["decoder"]!;
        Assert.AreEqual("decoder", (string)model["type"]!, "a decoder-only type: separate key/value caches, not gpt2's stacked past");
        Assert.AreEqual(53, (int)model["vocab_size"]!);
        Assert.AreEqual(24, (int)model["context_length"]!);
        Assert.AreEqual(50, (int)model["eos_token_id"]!);
        Assert.AreEqual(50, (int)model["bos_token_id"]!, "no begin token: the end token stands in");
        Assert.AreEqual(50, (int)model["pad_token_id"]!);
        Assert.AreEqual(ModelFolder.ModelFile, (string)decoder["filename"]!);
        Assert.AreEqual(32, (int)decoder["hidden_size"]!);
        Assert.AreEqual(16, (int)decoder["head_size"]!);
        Assert.AreEqual(2, (int)decoder["num_attention_heads"]!);
        Assert.AreEqual(2, (int)decoder["num_key_value_heads"]!);
        Assert.AreEqual(3, (int)decoder["num_hidden_layers"]!);
        Assert.AreEqual("past_key_values.%d.key", (string)decoder["inputs"]!["past_key_names"]!);
        Assert.AreEqual("present.%d.value", (string)decoder["outputs"]!["present_value_names"]!);
        Assert.AreEqual(shareBuffer, (bool)root["search"]!["past_present_share_buffer"]!, $"{flavor}: share buffer");
        Assert.AreEqual(24, (int)root["search"]!["max_length"]!);
    }

    [TestMethod]
    public void Gpt2UsesItsEndTokenAndTheGenerationDefaults()
    {
        var options = new ExportOptions { Generation = new GenerationDefaults { DoSample = false, TopK = 7, Temperature = 0.5 } };
        var root = JsonNode.Parse(GenAiConfig.ToJson(GptPresets.Get("gpt2"), options))!;
        Assert.AreEqual(50256, (int)root["model"]!["eos_token_id"]!);
        Assert.AreEqual(50256, (int)root["model"]!["pad_token_id"]!, "GPT-2 has no pad token; its end token pads");
        Assert.AreEqual(64, (int)root["model"]!["decoder"]!["head_size"]!);
        Assert.AreEqual(1024, (int)root["search"]!["max_length"]!);
        Assert.IsFalse((bool)root["search"]!["do_sample"]!);
        Assert.AreEqual(7, (int)root["search"]!["top_k"]!);
        Assert.AreEqual(0.5, (double)root["search"]!["temperature"]!);
    }

    [TestMethod]
    [DataRow(null, null, 0)]
    [DataRow(3, null, 3)]
    [DataRow(3, 4, 4)]
    public void EndTokenFallsBackToBeginThenZero(int? bos, int? eos, int expected)
    {
        // GenAI refuses an end token outside the vocabulary, so a vocabulary without one still gets a valid id.
        var config = TestWeights.Small() with { BosTokenId = bos, EosTokenId = eos };
        var root = JsonNode.Parse(GenAiConfig.ToJson(config, new ExportOptions()))!;
        Assert.AreEqual(expected, (int)root["model"]!["eos_token_id"]!);
        Assert.AreEqual(bos ?? expected, (int)root["model"]!["bos_token_id"]!);
    }
}

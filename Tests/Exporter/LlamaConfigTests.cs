using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Exporter;

/// <summary>Hugging Face LlamaForCausalLM configs: the fields read, the round trip, and every field we refuse, by name.</summary>
[TestClass]
public sealed class LlamaConfigTests
{
    private const string Base = """
        "model_type": "llama", "vocab_size": 512, "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5,
        "num_attention_heads": 8, "num_key_value_heads": 4, "max_position_embeddings": 512, "rms_norm_eps": 1e-05,
        "rope_theta": 500000.0, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": [2, 3]
        """;

    [TestMethod]
    public void ReadsTheLlamaFields()
    {
        var c = GptConfig.FromJson("{" + Base + "}", "config.json");
        Assert.AreEqual(ModelFamily.Llama, c.Family);
        Assert.AreEqual((64, 172, 5, 8, 4, 512, 512), (c.Width, c.FeedForwardWidth, c.Layers, c.Heads, c.KvHeads, c.VocabSize, c.ContextLength));
        Assert.AreEqual(500000.0, c.RopeTheta);
        Assert.AreEqual(1e-5, c.LayerNormEpsilon);
        Assert.IsFalse(c.RotaryInterleaved, "Hugging Face weights rotate halves");
        Assert.AreEqual((1, 2), (c.BosTokenId, c.EosTokenId), "the first of several end tokens");
        Assert.AreEqual((NormKind.RmsNorm, PositionEncoding.Rotary, MlpKind.Gated, Activation.Silu), (c.Norm, c.Positions, c.Mlp, c.Activation));
        Assert.AreEqual(c, GptConfig.FromJson(c.ToJson()), "the round trip keeps every field");
        var interleaved = c with { RotaryInterleaved = true, TiedHead = false };
        Assert.AreEqual(interleaved, GptConfig.FromJson(interleaved.ToJson()));
    }

    [TestMethod]
    [DataRow("\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}", "rope_scaling type 'llama3' is not implemented")]
    [DataRow("\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}", "rope_scaling type 'linear' is not implemented")]
    [DataRow("\"rope_scaling\": 2", "field 'rope_scaling' must be an object or null")]
    [DataRow("\"attention_bias\": true", "attention_bias true is not supported")]
    [DataRow("\"head_dim\": 16", "head_dim 16 × num_attention_heads 8 is 128, not hidden_size 64")]
    [DataRow("\"hidden_act\": \"gelu\"", "SiLU-gated MLP")]
    [DataRow("\"partial_rotary_factor\": 0.5", "partial_rotary_factor 0.5 is not supported")]
    public void RefusedFieldsAreNamed(string field, string expected)
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptConfig.FromJson("{" + Base + ", " + field + "}", "my/config.json"));
        StringAssert.Contains(e.Message, "my/config.json");
        StringAssert.Contains(e.Message, expected);
    }

    [TestMethod]
    public void KeyValueHeadsThatDoNotDivideTheHeadsAreRefused()
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() =>
            GptConfig.FromJson("{" + Base.Replace("\"num_key_value_heads\": 4", "\"num_key_value_heads\": 3", StringComparison.Ordinal) + "}", "c.json"));
        StringAssert.Contains(e.Message, "num_key_value_heads 3 must be positive and divide num_attention_heads 8");
    }

    [TestMethod]
    public void DefaultRopeScalingAndNullAreAccepted()
    {
        Assert.AreEqual(ModelFamily.Llama, GptConfig.FromJson("{" + Base + ", \"rope_scaling\": {\"rope_type\": \"default\"}}").Family);
        Assert.AreEqual(ModelFamily.Llama, GptConfig.FromJson("{" + Base + ", \"rope_scaling\": null}").Family);
    }

    [TestMethod]
    public void OtherFamiliesAreRefusedNotMisreadAsGpt2()
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptConfig.FromJson("{" + Base.Replace("\"llama\"", "\"mistral\"", StringComparison.Ordinal) + "}", "c.json"));
        StringAssert.Contains(e.Message, "model_type 'mistral' is not supported");
    }

    [TestMethod]
    public void MissingRequiredFieldIsNamed()
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptConfig.FromJson("{" + Base.Replace("\"intermediate_size\": 172,", "", StringComparison.Ordinal) + "}", "c.json"));
        StringAssert.Contains(e.Message, "'intermediate_size' is missing");
    }

    [TestMethod]
    public void CheckpointLoaderSaysWhatItFoundAndWhatItTakes()
    {
        using var tmp = TestPaths.NewTemp();
        Directory.CreateDirectory(tmp.Sub("odd"));
        File.WriteAllText(Path.Combine(tmp.Sub("odd"), "weights.pt"), "x");
        var e = Assert.ThrowsExactly<OnnxGptException>(() => CheckpointLoader.Load(tmp.Sub("odd")));
        StringAssert.Contains(e.Message, "found: weights.pt");
        StringAssert.Contains(e.Message, "llama2.c .bin");
        Assert.AreEqual(CheckpointLoader.Kind.Llama2c, CheckpointLoader.Detect(Stories260K.Checkpoint));
        Assert.AreEqual(CheckpointLoader.Kind.HuggingFaceFolder, CheckpointLoader.Detect(TestPaths.TinyRandomGpt2));
        Assert.AreEqual(ModelFamily.Gpt2, CheckpointLoader.Load(TestPaths.TinyRandomGpt2).Config.Family);
        Assert.AreEqual(ModelFamily.Llama, CheckpointLoader.Load(Stories260K.Checkpoint).Config.Family);
    }
}

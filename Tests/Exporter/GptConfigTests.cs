using OnnxGpt.Contracts;

namespace OnnxGpt.Tests.Exporter;

[TestClass]
public sealed class GptConfigTests
{
    [TestMethod]
    [DataRow("gpt2", 124_439_808L)]
    [DataRow("gpt2-medium", 354_823_168L)]
    [DataRow("gpt2-large", 774_030_080L)]
    [DataRow("gpt2-xl", 1_557_611_200L)]
    [DataRow("distilgpt2", 81_912_576L)]
    public void PresetParameterCountsMatchPublishedFigures(string preset, long expected)
    {
        Assert.AreEqual(expected, GptPresets.Get(preset).ParameterCount);
    }

    [TestMethod]
    public void WidthNotDivisibleByHeadsNamesBothNumbers()
    {
        var config = GptPresets.Get("gpt2") with { Width = 770 };
        var e = Assert.ThrowsExactly<OnnxGptException>(() => config.Validate());
        StringAssert.Contains(e.Message, "n_embd 770 is not divisible by n_head 12");
    }

    [TestMethod]
    [DataRow("vocab_size")]
    [DataRow("n_layer")]
    [DataRow("n_head")]
    [DataRow("n_positions")]
    [DataRow("n_embd")]
    public void ZeroOrNegativeSizesAreRejected(string field)
    {
        var c = GptPresets.Get("tiny");
        foreach (var bad in new[] { 0, -3 })
        {
            var broken = field switch
            {
                "vocab_size" => c with { VocabSize = bad, BosTokenId = null, EosTokenId = null },
                "n_layer" => c with { Layers = bad },
                "n_head" => c with { Heads = bad },
                "n_positions" => c with { ContextLength = bad },
                _ => c with { Width = bad },
            };
            var e = Assert.ThrowsExactly<OnnxGptException>(() => broken.Validate());
            StringAssert.Contains(e.Message, $"{field} must be positive, found {bad}");
        }
    }

    [TestMethod]
    public void UnknownPresetListsTheKnownOnes()
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptPresets.Get("gpt5"));
        StringAssert.Contains(e.Message, "'gpt5'");
        StringAssert.Contains(e.Message, "gpt2-medium");
    }

    [TestMethod]
    public void UnknownActivationIsNamed()
    {
        var json = """{"vocab_size":10,"n_positions":8,"n_embd":8,"n_layer":1,"n_head":2,"activation_function":"swish"}""";
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptConfig.FromJson(json, "my/config.json"));
        StringAssert.Contains(e.Message, "my/config.json");
        StringAssert.Contains(e.Message, "'swish'");
    }

    [TestMethod]
    public void JsonRoundTripKeepsEveryField()
    {
        var config = GptPresets.Get("tiny") with { InnerWidth = 100, Activation = Activation.Relu, Bias = false, TiedHead = false, LayerNormEpsilon = 1e-6 };
        Assert.AreEqual(config, GptConfig.FromJson(config.ToJson()));
    }
}

using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Tests.Runtime.Generation;

[TestClass]
public sealed class GenerationOptionsTests
{
    [TestMethod]
    [DataRow("MaxNewTokens", ">= 0")]
    [DataRow("Temperature", ">= 0")]
    [DataRow("TopK", ">= 0")]
    [DataRow("TopP", "(0, 1]")]
    [DataRow("TopPZero", "(0, 1]")]
    [DataRow("TopPNaN", "(0, 1]")]
    [DataRow("RepetitionPenalty", "> 0")]
    [DataRow("RepetitionPenaltyNegative", "> 0")]
    public void OutOfRangeOptionsNameTheOptionAndTheLimit(string option, string limit)
    {
        var defaults = new GenerationOptions();
        var (bad, name) = option switch
        {
            "MaxNewTokens" => (defaults with { MaxNewTokens = -1 }, "MaxNewTokens"),
            "Temperature" => (defaults with { Temperature = -0.5 }, "Temperature"),
            "TopK" => (defaults with { TopK = -1 }, "TopK"),
            "TopP" => (defaults with { TopP = 1.5 }, "TopP"),
            "TopPZero" => (defaults with { TopP = 0 }, "TopP"),
            "TopPNaN" => (defaults with { TopP = double.NaN }, "TopP"),
            "RepetitionPenalty" => (defaults with { RepetitionPenalty = 0 }, "RepetitionPenalty"),
            _ => (defaults with { RepetitionPenalty = -1 }, "RepetitionPenalty"),
        };
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(bad.Validate);
        Assert.AreEqual(name, e.ParamName);
        StringAssert.Contains(e.Message, $"{name} must be");
        StringAssert.Contains(e.Message, limit);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Sampler(bad), "the sampler validates too");
    }

    [TestMethod]
    public void BoundaryValuesAreAccepted()
    {
        new GenerationOptions { MaxNewTokens = 0, Temperature = 0, TopK = 0, TopP = 1, RepetitionPenalty = 0.01 }.Validate();
        new GenerationOptions { TopP = 1e-9 }.Validate();
        Assert.IsTrue(new GenerationOptions { Temperature = 0 }.IsGreedy);
        Assert.IsTrue(new GenerationOptions { DoSample = false, Temperature = 0.7 }.IsGreedy);
        Assert.IsFalse(new GenerationOptions().IsGreedy);
    }

    [TestMethod]
    public void EmptyStopStringIsRejected()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => new GenerationOptions { StopStrings = ["\n\n", ""] }.Validate());
        StringAssert.Contains(e.Message, "StopStrings[1]");
        var ids = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new GenerationOptions { StopTokenIds = [5, -2] }.Validate());
        StringAssert.Contains(ids.Message, "StopTokenIds[1]");
    }

    [TestMethod]
    public void ModelDefaultsOverlayThenHostOverrides()
    {
        var defaults = new GenerationDefaults { MaxNewTokens = 200, DoSample = true, Temperature = 0.8, TopK = 40, TopP = 0.95, RepetitionPenalty = 1.1 };
        var options = GenerationOptions.FromDefaults(defaults);
        var expected = new GenerationOptions { MaxNewTokens = 200, DoSample = true, Temperature = 0.8, TopK = 40, TopP = 0.95, RepetitionPenalty = 1.1 };
        Assert.AreEqual(expected with { StopTokenIds = options.StopTokenIds, StopStrings = options.StopStrings }, options);
        Assert.IsNull(options.Seed);
        var overridden = options with { Temperature = 0.2, Seed = 5 };
        Assert.AreEqual(0.2, overridden.Temperature);
        Assert.AreEqual(40, overridden.TopK, "fields not overridden keep the model's value");
        Assert.AreEqual(5UL, overridden.Seed);
    }
}

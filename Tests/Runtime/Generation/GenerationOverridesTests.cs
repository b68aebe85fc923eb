using Microsoft.Extensions.AI;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.DependencyInjection;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>
/// The one merge of a request's options with the model's defaults: its rules, and the same result from the three
/// places that used to merge on their own (the CLI, the chat client, the DI options).
/// </summary>
[TestClass]
public sealed class GenerationOverridesTests
{
    private static readonly GenerationOptions Sampling = GenerationOptions.FromDefaults(new GenerationDefaults
    {
        MaxNewTokens = 20, DoSample = true, Temperature = 0.9, TopK = 40, TopP = 0.95, RepetitionPenalty = 1.1,
    }) with { StopStrings = ["\n\n"] };

    private static readonly GenerationOptions Greedy = Sampling with { DoSample = false };

    [TestMethod]
    public void NothingOverriddenKeepsEveryDefault()
    {
        Assert.AreEqual(Sampling, new GenerationOverrides().ApplyTo(Sampling));
        Assert.AreEqual(Greedy, new GenerationOverrides().ApplyTo(Greedy));
    }

    [TestMethod]
    [DataRow(0.5, true, true, DisplayName = "a temperature turns sampling on over a greedy default")]
    [DataRow(0.0, false, false, DisplayName = "temperature 0 is greedy over a sampling default")]
    public void ATemperatureDecidesSampling(double temperature, bool greedyBase, bool expectSample)
    {
        var result = new GenerationOverrides { Temperature = temperature }.ApplyTo(greedyBase ? Greedy : Sampling);
        Assert.AreEqual(expectSample, result.DoSample);
        Assert.AreEqual(temperature, result.Temperature);
        Assert.AreEqual(!expectSample, result.IsGreedy);
    }

    [TestMethod]
    public void GreedyWinsOverTemperatureAndTheRestOverridesFieldByField()
    {
        var result = new GenerationOverrides { Greedy = true, Temperature = 0.7, TopK = 5, Seed = 9, StopStrings = ["END", "\n\n"] }.ApplyTo(Sampling);
        Assert.IsFalse(result.DoSample);
        Assert.AreEqual(5, result.TopK);
        Assert.AreEqual(0.95, result.TopP);
        Assert.AreEqual(9UL, result.Seed);
        CollectionAssert.AreEqual(new[] { "\n\n", "END" }, result.StopStrings.ToArray(), "added to the base's, each once");
    }

    [TestMethod]
    public void CliChatClientAndDiOptionsMergeAlike()
    {
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(ChatModels.ExportTinyGpt2(tmp));
        var defaults = GenerationOptions.FromDefaults(model.GenerationDefaults);
        var expected = new GenerationOverrides { MaxNewTokens = 7, Temperature = 0.5, TopK = 3, TopP = 0.8 }.ApplyTo(defaults);

        using var client = new OnnxGptChatClient(model);
        var fromChat = client.MapOptions(new ChatOptions { MaxOutputTokens = 7, Temperature = 0.5f, TopK = 3, TopP = 0.8f }, []);
        Assert.AreEqual(expected.DoSample, fromChat.DoSample);
        Assert.AreEqual(expected.MaxNewTokens, fromChat.MaxNewTokens);
        Assert.AreEqual(expected.TopK, fromChat.TopK);
        Assert.AreEqual(expected.Temperature, fromChat.Temperature, 1e-6);
        Assert.AreEqual(expected.TopP, fromChat.TopP, 1e-6);

        var fromDi = new OnnxGptOptions { ModelPath = "m", MaxOutputTokens = 7, Temperature = 0.5, TopK = 3, TopP = 0.8 }
            .ToChatClientOptions(defaults).DefaultGenerationOptions!;
        Assert.AreEqual(expected, fromDi);

        // Temperature 0 from any of them is greedy, whatever the model's default.
        Assert.IsTrue(client.MapOptions(new ChatOptions { Temperature = 0 }, []).IsGreedy);
        Assert.IsTrue(new OnnxGptOptions { ModelPath = "m", Temperature = 0 }.ToChatClientOptions(defaults).DefaultGenerationOptions!.IsGreedy);
    }
}

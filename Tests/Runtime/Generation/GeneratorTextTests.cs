using System.Text;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>Text: prompts from text, streamed pieces, the result text, stop strings.</summary>
[TestClass]
public sealed class GeneratorTextTests
{
    /// <summary>53 one-character tokens, one per id of <see cref="TestWeights.Small"/>'s vocabulary.</summary>
    private static readonly string[] Characters =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ".Select(c => c.ToString()).ToArray();

    private static readonly GenerationOptions Greedy = new() { DoSample = false, MaxNewTokens = 12 };

    [TestMethod]
    public async Task StreamedPiecesMakeTheResultTextWhichDecodesTheNewIds()
    {
        using var tmp = TestPaths.NewTemp();
        using var model = CharModel(tmp, out _);
        Assert.IsNotNull(model.Tokenizer);
        using var generator = model.CreateGenerator(Greedy);
        generator.AppendTextBatch(["Hello", "ab"]);
        CollectionAssert.AreEqual(model.Tokenizer.Encode("ab"), generator.GetSequence(1).ToArray());

        var streamed = new[] { new StringBuilder(), new StringBuilder() };
        await foreach (var token in generator.StreamAsync())
        {
            streamed[token.Row].Append(token.Text);
        }

        var results = generator.Results();
        for (int b = 0; b < 2; b++)
        {
            Assert.AreEqual(model.Tokenizer.Decode([.. results[b].NewIds]), results[b].Text, $"row {b}");
            Assert.AreEqual(results[b].Text, streamed[b].ToString(), $"row {b}");
            Assert.AreEqual(12, results[b].Text!.Length);
        }
    }

    [TestMethod]
    public void StopStringEndsTheRowAndIsLeftOutOfTheText()
    {
        using var tmp = TestPaths.NewTemp();
        using var model = CharModel(tmp, out _);
        string full;
        using (var free = model.CreateGenerator(Greedy))
        {
            free.AppendText("Hello");
            full = free.GenerateAll()[0].Text!;
        }

        string stop = full.Substring(4, 2);
        int at = full.IndexOf(stop, StringComparison.Ordinal);
        using var stopping = model.CreateGenerator(Greedy with { StopStrings = [stop] });
        stopping.AppendText("Hello");
        var result = stopping.GenerateAll()[0];
        Assert.AreEqual(FinishReason.StopString, result.FinishReason);
        Assert.AreEqual(full[..at], result.Text);
        Assert.AreEqual(at + stop.Length, result.NewTokens, "the token that completes the stop string is the last one");

        // Rewinding before the stop string lets the row generate again, its text rebuilt from the kept tokens.
        stopping.RewindTo(5 + at);
        Assert.AreEqual(FinishReason.None, stopping.GetFinishReason(0));
        Assert.AreEqual(full[..at], stopping.GetText(0));
        Assert.AreEqual(FinishReason.StopString, stopping.GenerateAll()[0].FinishReason);
        Assert.AreEqual(full[..at], stopping.GetText(0));
    }

    [TestMethod]
    public void StopTokenTextIsLeftOutAndModelsWithoutTokenizerRefuseText()
    {
        using var tmp = TestPaths.NewTemp();
        using var model = CharModel(tmp, out _);
        string full;
        int[] ids;
        using (var free = model.CreateGenerator(Greedy))
        {
            free.AppendText("Hello");
            var r = free.GenerateAll()[0];
            (full, ids) = (r.Text!, [.. r.NewIds]);
        }

        using var stopping = model.CreateGenerator(Greedy with { StopTokenIds = [ids[3]] });
        stopping.AppendText("Hello");
        var result = stopping.GenerateAll()[0];
        int first = Array.IndexOf(ids, ids[3]);
        Assert.AreEqual(FinishReason.StopToken, result.FinishReason);
        Assert.AreEqual(full[..first], result.Text);

        var weights = TestWeights.Random(TestWeights.Small(), seed: 62);
        using var bare = GptModel.Load(TestModels.Export(weights, tmp, "bare"));
        Assert.IsNull(bare.Tokenizer);
        using var generator = bare.CreateGenerator(Greedy);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => generator.AppendText("hi"));
        StringAssert.Contains(e.Message, "no tokenizer");
        e = Assert.ThrowsExactly<OnnxGptException>(() => bare.CreateGenerator(Greedy with { StopStrings = ["x"] }));
        StringAssert.Contains(e.Message, "stop strings");
    }

    [TestMethod]
    public void OneShotTextEqualsTheGeneratorsText()
    {
        using var tmp = TestPaths.NewTemp();
        using var model = CharModel(tmp, out _);
        using var generator = model.CreateGenerator(Greedy);
        generator.AppendText("Hello");
        Assert.AreEqual(generator.GenerateAll()[0].Text, model.GenerateText("Hello", Greedy));
    }

    internal static GptModel CharModel(TempFolder tmp, out GptWeights weights)
    {
        weights = TestWeights.Random(TestWeights.Small(heads: 2), seed: 61);
        var spec = new TokenizerSpec { Kind = TokenizerSpec.CharKind, Characters = Characters };
        return GptModel.Load(TestModels.Export(weights, tmp, "chars", new ExportOptions { Tokenizer = spec }));
    }
}

using GenAiModel = Microsoft.ML.OnnxRuntimeGenAI.Model;
using Microsoft.ML.OnnxRuntimeGenAI;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.GenAi;

/// <summary>
/// The synthetic GenAI folders the foreign-folder tests load (<see cref="ForeignFolders.GenAiGpt2"/>: a
/// <c>gpt2</c>-type <c>genai_config.json</c> without <c>num_attention_heads</c> or <c>hidden_size</c>, a stacked
/// <c>past_%d</c> cache, a variant whose every input and output is renamed in the config, and a <c>decoder</c>-type
/// folder with renamed per-layer key and value names) are GenAI's convention as
/// GenAI itself reads it: ONNX Runtime GenAI runs each to the greedy tokens our runtime generates from it.
/// </summary>
[TestClass]
public sealed class GenAiFolderConventionTests
{
    private static readonly int[] Prompt = [5, 17, 3, 51, 0, 9];

    [TestMethod]
    [DataRow("gpt2")]
    [DataRow("gpt2 renamed")]
    [DataRow("decoder renamed")]
    public void GenAiRunsTheSyntheticGpt2FolderToOurTokens(string convention)
    {
        using var tmp = TestPaths.NewTemp();
        string folder = convention == "decoder renamed" ? ForeignFolders.GenAiDecoderRenamed(tmp) : ForeignFolders.GenAiGpt2(tmp, renamed: convention == "gpt2 renamed");
        const int maxLength = 20;

        using var genai = new GenAiModel(folder);
        Assert.AreEqual(convention.Split(' ')[0], genai.GetModelType());
        using var parameters = new GeneratorParams(genai);
        parameters.SetSearchOption("do_sample", false);
        parameters.SetSearchOption("max_length", maxLength);
        using var generator = new Microsoft.ML.OnnxRuntimeGenAI.Generator(genai, parameters);
        generator.AppendTokens(Prompt);
        while (!generator.IsDone())
        {
            generator.GenerateNextToken();
        }

        var theirs = generator.GetSequence(0).ToArray();

        using var model = GptModel.Load(folder);
        Assert.AreEqual(ModelLayoutKind.GenAi, model.Layout.Kind);
        using var ours = model.CreateGenerator(new GenerationOptions { DoSample = false, MaxNewTokens = maxLength - Prompt.Length });
        ours.Append(Prompt);
        // GenAI stops at the end token and leaves it out of the sequence.
        var mine = ours.GenerateAll()[0].Ids.TakeWhile(t => t != 98).ToArray();
        Assert.IsGreaterThan(Prompt.Length + 3, mine.Length, "a few tokens before any end token");
        CollectionAssert.AreEqual(mine, theirs, $"{convention}: ours [{string.Join(", ", mine)}], GenAI [{string.Join(", ", theirs)}]");
    }
}

using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Models;

/// <summary>
/// models/stories260K, the pretrained Llama model the project ships beside its own Shakespeare model: it is exactly
/// the export of Tests/Data/stories260K (so anyone can make it again), and it writes its story.
/// </summary>
[TestClass]
public sealed class ShippedStoriesTests
{
    /// <summary>Set to 1 to write the shipped folder from the test data instead of comparing with it.</summary>
    private const string UpdateVariable = "ONNXGPT_UPDATE_SHIPPED";

    private static string Folder => Path.Combine(TestPaths.RepoRoot, "models", "stories260K");

    /// <summary>What the demo and the model's metadata suggest: continue a story, sampled with some freedom.</summary>
    internal static GenerationDefaults Defaults { get; } = new()
    {
        MaxNewTokens = 200, DoSample = true, Temperature = 0.8, TopK = 0, TopP = 0.9, Prompt = "Once upon a time",
    };

    [TestMethod]
    public void ShippedFolderIsTheExportOfTheTestData()
    {
        using var tmp = TestPaths.NewTemp();
        string fresh = Stories260KExport.Folder(tmp, "fresh", GraphOptions.Portable, chatTemplate: Stories260KHostsTests.StoryTemplate, defaults: Defaults);
        if (Environment.GetEnvironmentVariable(UpdateVariable) == "1")
        {
            Directory.CreateDirectory(Folder);
            foreach (var file in Directory.GetFiles(fresh))
            {
                File.Copy(file, Path.Combine(Folder, Path.GetFileName(file)), overwrite: true);
            }
        }

        foreach (var file in Directory.GetFiles(fresh).Select(Path.GetFileName))
        {
            string shipped = Path.Combine(Folder, file!);
            Assert.IsTrue(File.Exists(shipped), $"{shipped} is missing; run this test with {UpdateVariable}=1 to write it.");
            CollectionAssert.AreEqual(File.ReadAllBytes(Path.Combine(fresh, file!)), File.ReadAllBytes(shipped),
                $"{shipped} differs from a fresh export of Tests/Data/stories260K; run this test with {UpdateVariable}=1 to write it again.");
        }

        Assert.IsTrue(File.Exists(Path.Combine(Folder, "LICENSE")), "the MIT licence ships beside the model");
    }

    [TestMethod]
    public void ShippedModelWritesItsStory()
    {
        using var model = GptModel.Load(Folder);
        Assert.AreEqual(TokenizerSpec.SentencePieceKind, model.TokenizerSpec!.Kind);
        Assert.AreEqual("Once upon a time", model.GenerationDefaults.Prompt);
        string greedy = model.GenerateText("", new GenerationOptions { MaxNewTokens = 30, Temperature = 0 });
        StringAssert.StartsWith(greedy, Stories260K.GreedyStart);
    }
}

using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary><c>onnxgpt export --checkpoint PATH [--tokenizer FILE]</c>: the checkpoint's kind is detected; <c>--hf</c> is the same option.</summary>
[TestClass]
public sealed class ExportCheckpointCommandTests
{
    [TestMethod]
    [DataRow("tok512.model", "fused")]
    [DataRow("tok512.bin", "portable")]
    public void Llama2cCheckpointWithATokenizerFileWritesTheStory(string tokenizer, string graph)
    {
        using var tmp = TestPaths.NewTemp();
        string data = Path.GetDirectoryName(Stories260K.Checkpoint)!;
        var (code, _, err) = ExportCommandTests.Cli("export", "--checkpoint", Stories260K.Checkpoint, "--tokenizer", Path.Combine(data, tokenizer),
            "--graph", graph, "--out", tmp.Sub("m"));
        Assert.AreEqual(0, code, err);
        Assert.IsTrue(File.Exists(Path.Combine(tmp.Sub("m"), tokenizer)), "the tokenizer file is copied beside the model");
        using var model = GptModel.Load(tmp.Sub("m"));
        Assert.AreEqual((1, 2), (model.Config.BosTokenId, model.Config.EosTokenId), "begin/end ids from the tokenizer file");
        StringAssert.StartsWith(model.GenerateText("", new GenerationOptions { MaxNewTokens = 20, Temperature = 0 }), Stories260K.GreedyStart);
    }

    [TestMethod]
    public void HfIsAnAliasAndAFolderWithoutAConfigIsDescribed()
    {
        using var tmp = TestPaths.NewTemp();
        var (code, _, err) = ExportCommandTests.Cli("export", "--hf", TestPaths.TinyRandomGpt2, "--out", tmp.Sub("m"));
        Assert.AreEqual(0, code, err);

        Directory.CreateDirectory(tmp.Sub("empty"));
        File.WriteAllText(Path.Combine(tmp.Sub("empty"), "notes.txt"), "x");
        (code, _, err) = ExportCommandTests.Cli("export", "--checkpoint", tmp.Sub("empty"), "--out", tmp.Sub("n"));
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(err, "found: notes.txt");
        StringAssert.Contains(err, "llama2.c .bin");
    }

    [TestMethod]
    public void ATokenizerOfAnotherVocabularyIsRefused()
    {
        using var tmp = TestPaths.NewTemp();
        var bin = File.ReadAllBytes(Stories260K.Llama2cTokenizer);
        // Keep the header and the first 300 tokens: a well-formed file with the wrong vocabulary size.
        int at = 4;
        for (int i = 0; i < 300; i++)
        {
            at += 8 + BitConverter.ToInt32(bin, at + 4);
        }

        string path = tmp.Write("tok300.bin", bin[..at]);
        var (code, _, err) = ExportCommandTests.Cli("export", "--checkpoint", Stories260K.Checkpoint, "--tokenizer", path, "--out", tmp.Sub("m"));
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(err, "has 300 tokens, but the checkpoint's vocabulary has 512");
    }
}

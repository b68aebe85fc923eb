using System.Text.Json.Nodes;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Tokenization;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Tokenization;

/// <summary>Token ids are checked against the vocabulary that backs them before any array is sized from them.</summary>
[TestClass]
public sealed class TokenizerSizeLimitTests
{
    private static string CopyTiny(TempFolder temp)
    {
        foreach (var name in new[] { "vocab.json", "merges.txt", "tokenizer.json" })
        {
            File.Copy(Path.Combine(TestPaths.TinyRandomGpt2, name), temp.Sub(name));
        }

        return temp.Path;
    }

    [TestMethod]
    [DataRow(300_000_000)]
    [DataRow(1_500_000_000)]
    [DataRow(int.MaxValue)]
    public void AHugeIdInVocabJsonIsRefused(int id)
    {
        using var temp = new TempFolder();
        string folder = CopyTiny(temp);
        var vocab = JsonNode.Parse(File.ReadAllText(temp.Sub("vocab.json")))!.AsObject();
        vocab["zzzz"] = id;
        File.WriteAllText(temp.Sub("vocab.json"), vocab.ToJsonString());
        var e = Assert.ThrowsExactly<OnnxGptException>(() =>
            TokenizerFactory.Create(new TokenizerSpec { Kind = TokenizerSpec.BpeKind, Files = ["vocab.json", "merges.txt"] }, folder));
        StringAssert.Contains(e.Message, $"token 'zzzz' has id {id}; expected an id in [0, ");
    }

    [TestMethod]
    [DataRow(300_000_000)]
    [DataRow(int.MaxValue)]
    public void AHugeAddedTokenIdInTokenizerJsonIsRefused(int id)
    {
        using var temp = new TempFolder();
        string folder = CopyTiny(temp);
        var root = JsonNode.Parse(File.ReadAllText(temp.Sub("tokenizer.json")))!.AsObject();
        var added = root["added_tokens"] as JsonArray ?? [];
        added.Add(new JsonObject { ["id"] = id, ["content"] = "<|huge|>" });
        root["added_tokens"] = added.DeepClone();
        File.WriteAllText(temp.Sub("tokenizer.json"), root.ToJsonString());
        var e = Assert.ThrowsExactly<OnnxGptException>(() =>
            TokenizerFactory.Create(new TokenizerSpec { Kind = TokenizerSpec.TokenizerJsonKind, Files = ["tokenizer.json"] }, folder));
        StringAssert.Contains(e.Message, $"token '<|huge|>' has id {id}; expected an id in [0, ");
    }
}

using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Tokenization;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Tokenization;

[TestClass]
public sealed class TokenizerFactoryTests
{
    private static string TinyFile(string name) => Path.Combine(TestPaths.TinyRandomGpt2, name);

    [TestMethod]
    public void InferPrefersTokenizerJsonThenVocabAndMergesThenGpt2BySize()
    {
        Assert.AreEqual(TokenizerSpec.TokenizerJsonKind, TokenizerFactory.Infer(TestPaths.TinyRandomGpt2).Kind);

        using var tmp = TestPaths.NewTemp();
        File.Copy(TinyFile("vocab.json"), tmp.Sub("vocab.json"));
        File.Copy(TinyFile("merges.txt"), tmp.Sub("merges.txt"));
        var spec = TokenizerFactory.Infer(tmp.Path);
        Assert.AreEqual(TokenizerSpec.BpeKind, spec.Kind);
        CollectionAssert.AreEqual(
            new[] { 198, 755, 673 },
            TokenizerFactory.Create(spec, tmp.Path).Encode(" the quick"),
            "the inferred spec builds the same tokenizer");

        using var gpt2Folder = TestPaths.NewTemp();
        File.WriteAllText(gpt2Folder.Sub("config.json"), """{"vocab_size": 50257}""");
        Assert.AreEqual(TokenizerSpec.Gpt2Kind, TokenizerFactory.Infer(gpt2Folder.Path).Kind);
        using var empty = TestPaths.NewTemp();
        Assert.AreEqual(TokenizerSpec.Gpt2Kind, TokenizerFactory.Infer(empty.Path, vocabularySize: 50257).Kind);
    }

    [TestMethod]
    public void InferWithoutAnyTokenizerSaysWhatWasLookedFor()
    {
        using var tmp = TestPaths.NewTemp();
        File.Copy(TinyFile("vocab.json"), tmp.Sub("vocab.json"));
        var e = Assert.ThrowsExactly<OnnxGptException>(() => TokenizerFactory.Infer(tmp.Path, vocabularySize: 1000));
        StringAssert.Contains(e.Message, "tokenizer.json");
        StringAssert.Contains(e.Message, "merges.txt is not");
        StringAssert.Contains(e.Message, "50257");
        StringAssert.Contains(e.Message, "has 1000 tokens");

        var missing = Assert.ThrowsExactly<OnnxGptException>(() => TokenizerFactory.Infer(tmp.Sub("nowhere")));
        StringAssert.Contains(missing.Message, "does not exist");
    }

    [TestMethod]
    public void SpecFilesMustStayInsideTheModelFolder()
    {
        foreach (var name in new[] { "../vocab.json", "/etc/passwd", "" })
        {
            var spec = new TokenizerSpec { Kind = TokenizerSpec.TokenizerJsonKind, Files = [name] };
            var e = Assert.ThrowsExactly<OnnxGptException>(() => TokenizerFactory.Create(spec, TestPaths.TinyRandomGpt2));
            StringAssert.Contains(e.Message, "inside it", name);
        }
    }

    [TestMethod]
    public void MissingTokenizerFileIsNamed()
    {
        using var tmp = TestPaths.NewTemp();
        var e = Assert.ThrowsExactly<OnnxGptException>(() => TokenizerFactory.Create(new TokenizerSpec { Kind = TokenizerSpec.BpeKind }, tmp.Path));
        StringAssert.Contains(e.Message, "vocab.json");
        StringAssert.Contains(e.Message, "does not exist");
        Assert.ThrowsExactly<ArgumentException>(() => TokenizerFactory.Create(new TokenizerSpec { Kind = TokenizerSpec.BpeKind }));
    }

    [TestMethod]
    public void MalformedMergeLineIsNamedByLineNumber()
    {
        using var tmp = TestPaths.NewTemp();
        File.Copy(TinyFile("vocab.json"), tmp.Sub("vocab.json"));
        File.WriteAllText(tmp.Sub("merges.txt"), "#version: 0.2\nĠ t\nh e x\n");
        var e = Assert.ThrowsExactly<OnnxGptException>(() => TokenizerFactory.Create(new TokenizerSpec { Kind = TokenizerSpec.BpeKind }, tmp.Path));
        StringAssert.Contains(e.Message, "merges.txt line 3");
        StringAssert.Contains(e.Message, "'h e x'");
    }

    [TestMethod]
    [DataRow("\"type\": \"BPE\"", "\"type\": \"Unigram\"", "'model.type' is 'Unigram'")]
    [DataRow("\"normalizer\": null", "\"normalizer\": {\"type\": \"NFC\"}", "field 'normalizer'")]
    [DataRow("\"add_prefix_space\": false,\n    \"trim_offsets\": true", "\"add_prefix_space\": true,\n    \"trim_offsets\": true", "'pre_tokenizer.add_prefix_space' is true")]
    [DataRow("\"byte_fallback\": false", "\"byte_fallback\": true", "'model.byte_fallback' is true")]
    [DataRow("\"continuing_subword_prefix\": \"\"", "\"continuing_subword_prefix\": \"##\"", "'model.continuing_subword_prefix' is '##'")]
    [DataRow("\"Ġ t\",", "\"Ġt\",", "model.merges[0]")]
    public void UnsupportedTokenizerJsonIsRejectedNamingTheField(string find, string replace, string expected)
    {
        var json = File.ReadAllText(TinyFile("tokenizer.json"));
        Assert.Contains(find, json, "the edit must apply to the real file");
        using var tmp = TestPaths.NewTemp();
        File.WriteAllText(tmp.Sub("tokenizer.json"), ReplaceFirst(json, find, replace));
        var e = Assert.ThrowsExactly<OnnxGptException>(() =>
            TokenizerFactory.Create(new TokenizerSpec { Kind = TokenizerSpec.TokenizerJsonKind }, tmp.Path));
        StringAssert.Contains(e.Message, expected);
        StringAssert.Contains(e.Message, "tokenizer.json");
    }

    [TestMethod]
    public void TokenizerJsonWithPairMergesMatchesTheStringForm()
    {
        var json = File.ReadAllText(TinyFile("tokenizer.json"));
        var start = json.IndexOf("\"merges\": [", StringComparison.Ordinal);
        var end = json.IndexOf(']', start);
        var merges = File.ReadAllLines(TinyFile("merges.txt")).Skip(1).Where(l => l.Length > 0)
            .Select(l => l.Split(' ')).Select(p => $"[{System.Text.Json.JsonSerializer.Serialize(p[0])}, {System.Text.Json.JsonSerializer.Serialize(p[1])}]");
        using var tmp = TestPaths.NewTemp();
        File.WriteAllText(tmp.Sub("tokenizer.json"), json[..start] + "\"merges\": [" + string.Join(",", merges) + json[end..]);
        var pairs = TokenizerFactory.Create(new TokenizerSpec { Kind = TokenizerSpec.TokenizerJsonKind }, tmp.Path);
        var strings = TokenizerFactory.Create(new TokenizerSpec { Kind = TokenizerSpec.TokenizerJsonKind }, TestPaths.TinyRandomGpt2);
        const string text = "the quick brown fox described an episode near here";
        CollectionAssert.AreEqual(strings.Encode(text), pairs.Encode(text));
    }

    [TestMethod]
    public void AddedTokenBeyondTheVocabularyIsSplitOutAndDecoded()
    {
        var json = File.ReadAllText(TinyFile("tokenizer.json"));
        const string find = "\"added_tokens\": [";
        Assert.Contains(find, json);
        using var tmp = TestPaths.NewTemp();
        File.WriteAllText(tmp.Sub("tokenizer.json"), ReplaceFirst(json, find,
            find + "{\"id\": 1000, \"content\": \"<|pad|>\", \"special\": true, \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false},"));
        var tokenizer = TokenizerFactory.Create(new TokenizerSpec { Kind = TokenizerSpec.TokenizerJsonKind }, tmp.Path);
        Assert.AreEqual(1001, tokenizer.VocabularySize);
        var ids = tokenizer.Encode("a<|pad|>b<|endoftext|>");
        CollectionAssert.AreEqual(new[] { 65, 1000, 66, 0 }, ids);
        Assert.AreEqual("a<|pad|>b<|endoftext|>", tokenizer.Decode(ids));
        Assert.IsTrue(tokenizer.IsSpecialToken(1000));
    }

    [TestMethod]
    public void UnknownKindIsAnError()
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() => TokenizerFactory.Create(new TokenizerSpec { Kind = "wordpiece" }));
        StringAssert.Contains(e.Message, "'wordpiece'");
        StringAssert.Contains(e.Message, "gpt2");
    }

    private static string ReplaceFirst(string text, string find, string replace)
    {
        var at = text.IndexOf(find, StringComparison.Ordinal);
        return text[..at] + replace + text[(at + find.Length)..];
    }
}

using System.Text;
using System.Text.Json;
using OnnxGpt.Contracts;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Contracts;

/// <summary>The one JSON reader: duplicate keys, bad UTF-8, lone surrogates, depth and syntax, each with file and path.</summary>
[TestClass]
public sealed class JsonInputTests
{
    private static OnnxGptException Refused(string json) =>
        Assert.ThrowsExactly<OnnxGptException>(() => JsonInput.Parse(json, "in.json").Dispose());

    [TestMethod]
    [DataRow("""{"a":1,"a":2}""", "key 'a' appears twice in the object at $;")]
    [DataRow("""{"model":{"decoder":{"filename":"x","filename":"y"}}}""", "key 'filename' appears twice in the object at $.model.decoder;")]
    [DataRow("""{"list":[{"k":1},{"k":2,"k":3}]}""", "key 'k' appears twice in the object at $.list[1];")]
    public void DuplicateKeysAreRefusedWithTheirPath(string json, string expected)
    {
        var e = Refused(json);
        StringAssert.StartsWith(e.Message, "in.json: ");
        StringAssert.Contains(e.Message, expected);
        StringAssert.Contains(e.Message, "duplicate keys are refused");
    }

    [TestMethod]
    public void TheSameKeyInSiblingObjectsIsFine()
    {
        using var document = JsonInput.Parse("""{"a":{"k":1},"b":{"k":2},"c":[{"k":3},{"k":4}]}""", "in.json");
        Assert.AreEqual(4, document.RootElement.GetProperty("c")[1].GetProperty("k").GetInt32());
    }

    [TestMethod]
    public void InvalidUtf8NamesItsOffset()
    {
        var bytes = Encoding.UTF8.GetBytes("""{"ab":1}""");
        bytes[3] = 0xFF;
        var e = Assert.ThrowsExactly<OnnxGptException>(() => JsonInput.Parse(bytes, "shards.json"));
        StringAssert.Contains(e.Message, "shards.json: not valid UTF-8 (the first invalid byte is at offset 3)");
    }

    [TestMethod]
    [DataRow("""{"a":"\ud83d"}""", "a string at $.a is not valid Unicode")]
    [DataRow("""{"ok":[1,"\udc00x"]}""", "a string at $.ok[1] is not valid Unicode")]
    [DataRow("""{"m":{"\ud83dx":1}}""", "a key at $.m is not valid Unicode")]
    public void EscapedLoneSurrogatesAreRefusedWithTheirPath(string json, string expected) =>
        StringAssert.Contains(Refused(json).Message, expected);

    [TestMethod]
    public void AnEscapedSurrogatePairIsText()
    {
        using var document = JsonInput.Parse("""{"e":"\ud83d\ude42"}""", "in.json");
        Assert.AreEqual("🙂", document.RootElement.GetProperty("e").GetString());
    }

    [TestMethod]
    public void ALoneSurrogateInTextIsRefused()
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() => JsonInput.Parse("{\"a\":\"\uD83D\"}", "metadata"));
        StringAssert.Contains(e.Message, "metadata: the text holds a lone surrogate at character 6");
    }

    [TestMethod]
    [DataRow("""{"a":[1,2,]}""", "not valid JSON at $.a[1] (line 1")]
    [DataRow("{\"a\":1 // c\n}", "not valid JSON at $.a (line 1")]
    [DataRow("{\"a\":\n{\"b\":tru}}", "not valid JSON at $.a.b (line 2")]
    [DataRow("", "not valid JSON at $ (line 1")]
    public void SyntaxErrorsNameLineAndPath(string json, string expected) =>
        StringAssert.Contains(Refused(json).Message, expected);

    [TestMethod]
    public void NestingBeyondTheLimitIsRefused()
    {
        string deep = new string('[', JsonInput.MaxDepth + 1) + new string(']', JsonInput.MaxDepth + 1);
        StringAssert.Contains(Refused(deep).Message, "not valid JSON");
        string ok = new string('[', JsonInput.MaxDepth) + new string(']', JsonInput.MaxDepth);
        JsonInput.Parse(ok, "in.json").Dispose();
    }

    [TestMethod]
    public void AByteOrderMarkIsSkipped()
    {
        using var document = JsonInput.Parse((byte[])[0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes("""{"a":1}""")], "bom.json");
        Assert.AreEqual(1, document.RootElement.GetProperty("a").GetInt32());
    }

    [TestMethod]
    public void DeserializeAppliesTheSameRules()
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GenerationDefaults.FromJson("""{"top_k":1,"top_k":2}""", "meta"));
        StringAssert.Contains(e.Message, "key 'top_k' appears twice");
        e = Assert.ThrowsExactly<OnnxGptException>(() => GenerationDefaults.FromJson("""{"max_new_tokens":1e20}""", "meta"));
        StringAssert.Contains(e.Message, "meta: ");
        StringAssert.Contains(e.Message, "$.max_new_tokens");
        e = Assert.ThrowsExactly<OnnxGptException>(() => TokenizerSpec.FromJson("""{"kind":"gpt2","kind":"char"}""", "spec"));
        StringAssert.Contains(e.Message, "key 'kind' appears twice");
    }

    [TestMethod]
    public void ReadFileRefusesAFileOverItsLimit()
    {
        using var temp = new TempFolder();
        string path = temp.Write("big.json", Encoding.UTF8.GetBytes("[" + new string(' ', 100) + "]"));
        var e = Assert.ThrowsExactly<OnnxGptException>(() => JsonInput.ReadFile(path, "index", maxBytes: 50));
        StringAssert.Contains(e.Message, "the index is 102 bytes; expected at most 50 bytes");
    }

    [TestMethod]
    public void FieldsNameTheirPathWhenTheTypeIsWrong()
    {
        using var document = JsonInput.Parse("""{"model":{"layers":[{"n":"x"}],"big":1e30,"f":1.5}}""", "cfg.json");
        var root = JsonInput.Root(document, "cfg.json");
        var n = root.Require("model").Require("layers").Items().First().Require("n");
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => n.GetInt32()).Message, "cfg.json: $.model.layers[0].n: expected an integer, found \"x\".");
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => root.Require("model").Require("big").GetInt32(0, 10)).Message, "expected an integer in [0, 10], found 1e30");
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => root.Require("model").Require("f").GetInt64()).Message, "expected an integer, found 1.5");
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => root.Require("missing")).Message, "required field '$.missing' is missing");
        Assert.AreEqual(JsonValueKind.Number, root.Require("model").Require("f").Kind);
    }

    [TestMethod]
    [DataRow("""{"vocab_size":10,"vocab_size":10,"n_positions":4,"n_embd":4,"n_layer":1,"n_head":1}""", "key 'vocab_size' appears twice")]
    [DataRow("""{"vocab_size":10,"n_positions":4,"n_embd":4,"n_layer":1000000000,"n_head":1}""", "n_layer is 1000000000, above this project's limit of 1024")]
    [DataRow("""{"vocab_size":10,"n_positions":4,"n_embd":4,"n_layer":1e9,"n_head":1}""", "n_layer is 1000000000, above this project's limit of 1024")]
    [DataRow("""{"vocab_size":2147483647,"n_positions":4,"n_embd":4,"n_layer":1,"n_head":1}""", "vocab_size is 2147483647, above this project's limit of 16777216")]
    [DataRow("""{"vocab_size":10,"n_positions":4,"n_embd":4,"n_layer":1,"n_head":1,"n_inner":"x"}""", "$.n_inner: expected an integer, found \"x\"")]
    public void ConfigFilesAreReadByTheOneReaderWithLimits(string json, string expected)
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptConfig.FromJson(json, "config.json"));
        StringAssert.StartsWith(e.Message, "config.json: ");
        StringAssert.Contains(e.Message, expected);
    }
}

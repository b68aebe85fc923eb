using System.Text;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Tokenization;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Tokenization;

/// <summary>stories260K's vocabulary in its two files: the SentencePiece model and llama2.c's tok512.bin.</summary>
[TestClass]
public sealed class SentencePieceTokenizerTests
{
    private static readonly string Folder = Path.GetDirectoryName(Stories260K.SentencePieceModel)!;

    private static ITextTokenizer Model => TokenizerFactory.Create(TokenizerSpec.ForFile("tok512.model")!, Folder);

    private static ITextTokenizer Bin => TokenizerFactory.Create(TokenizerSpec.ForFile("tok512.bin")!, Folder);

    private static readonly string[] Texts =
    [
        "Once upon a time, there was a little girl named Lily.",
        "She liked to play outside.\nOne day, she saw a big, red ball!",
        "tab\tthen; \"quotes\" and (brackets) 12345",
        "café, naïve, 日本語, emoji 🙂 and Ω",
        "a",
    ];

    [TestMethod]
    public void BothFilesDescribeTheSameVocabulary()
    {
        var model = Model;
        var bin = Bin;
        Assert.AreEqual(512, model.VocabularySize);
        Assert.AreEqual(model.VocabularySize, bin.VocabularySize);
        for (int id = 0; id < model.VocabularySize; id++)
        {
            if (id == 0)
            {
                continue;   // <unk>: SentencePiece decodes it as " ⁇ ", llama2.c keeps the text "<unk>"
            }

            CollectionAssert.AreEqual(model.GetTokenBytes(id).ToArray(), bin.GetTokenBytes(id).ToArray(),
                $"id {id}: '{Encoding.UTF8.GetString(model.GetTokenBytes(id))}' vs '{Encoding.UTF8.GetString(bin.GetTokenBytes(id))}'");
            Assert.AreEqual(model.IsSpecialToken(id), bin.IsSpecialToken(id), $"id {id} special");
        }

        Assert.AreEqual((1, 2), (model.BosTokenId, model.EosTokenId), "the SentencePiece model's trainer spec: <s> = 1, </s> = 2");
        Assert.AreEqual((model.BosTokenId, model.EosTokenId), (bin.BosTokenId, bin.EosTokenId), "tok512.bin's \\n<s>\\n and \\n</s>\\n pieces");
        Assert.IsTrue(model.AddsBosToken && bin.AddsBosToken);
        Assert.AreEqual((byte)'\n', model.GetTokenBytes(13).ToArray().Single(), "<0x0A> (id 13) is the byte 0x0A");
    }

    [TestMethod]
    public void BothFilesEncodeAndDecodeAlike()
    {
        var model = Model;
        var bin = Bin;
        foreach (var text in Texts)
        {
            var a = model.Encode(text);
            var b = bin.Encode(text);
            CollectionAssert.AreEqual(a, b, $"'{text}': [{string.Join(",", a)}] vs [{string.Join(",", b)}]");
            Assert.AreEqual(text, model.Decode(a), "decoding gives the text back (the dummy prefix space is dropped again)");
            Assert.AreEqual(text, bin.Decode(b));
        }

        // Runs of whitespace: the .model's normalizer (remove_extra_whitespaces) collapses them, as SentencePiece does;
        // run.c's encoder, which llama2.c's tokenizer file goes with, has no normalizer and keeps each space.
        const string spaced = "  two  spaces ";
        Assert.AreEqual("two spaces", model.Decode(model.Encode(spaced)));
        Assert.AreEqual(spaced, bin.Decode(bin.Encode(spaced)));

        // Byte fallback: characters outside the 512 pieces become their UTF-8 bytes.
        var ids = model.Encode("日");
        CollectionAssert.AreEqual(Encoding.UTF8.GetBytes("日"), ids.Skip(1).SelectMany(i => model.GetTokenBytes(i).ToArray()).ToArray());
    }

    [TestMethod]
    public void MicrosoftTokenizersDecodesOurIdsToTheSameText()
    {
        using var stream = File.OpenRead(Stories260K.SentencePieceModel);
        var reference = Microsoft.ML.Tokenizers.LlamaTokenizer.Create(stream);
        var model = Model;
        foreach (var text in Texts.Where(t => t.Length > 1))   // 2.0.1 encodes a one-character text to nothing (ours works around it)
        {
            var ids = model.Encode(text);
            Assert.AreEqual(reference.Decode(ids), model.Decode(ids), $"'{text}'");
            CollectionAssert.AreEqual(reference.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false).ToArray(), ids);
        }
    }

    [TestMethod]
    public void StreamingSplitsNoCharacterAcrossByteTokensAndDropsTheFirstSpaceAfterBos()
    {
        var model = Model;
        string text = "Lily said: 日本 🙂\nThe end.";
        int[] ids = [1, .. model.Encode(text)];
        var decoder = new StreamingDecoder(model);
        var pieces = ids.Select(decoder.Append).ToList();
        pieces.Add(decoder.Flush());
        Assert.AreEqual(text, string.Concat(pieces), "the pieces add up to the text; <s> has no text, the space after it is dropped");
        Assert.IsTrue(pieces.All(p => p.Length == 0 || !char.IsSurrogate(p[^1]) || char.IsLowSurrogate(p[^1])), "no piece ends in half a surrogate pair");

        // The emoji is four byte tokens: the first three give nothing, the fourth the whole character.
        int at = Array.FindIndex(ids, i => model.GetTokenBytes(i).Length == 1 && model.GetTokenBytes(i)[0] == 0xF0);
        Assert.IsGreaterThan(0, at, "🙂 falls back to bytes");
        CollectionAssert.AreEqual(new[] { "", "", "", "🙂" }, pieces.Skip(at).Take(4).ToArray());
        Assert.IsTrue(pieces.Contains("\n"), "<0x0A> streams as a newline");

        // After a prompt's last word, the next word keeps its space.
        decoder.Reset(model.Encode("Once upon a time")[^1]);
        Assert.AreEqual(" there was", string.Concat(model.Encode("there was").Select(decoder.Append)));
        decoder.Reset();
        Assert.AreEqual("there was", string.Concat(model.Encode("there was").Select(decoder.Append)), "at the start of a text the space goes");
    }

    [TestMethod]
    public void BadTokenizerFilesAreNamed()
    {
        using var tmp = TestPaths.NewTemp();
        var bin = File.ReadAllBytes(Stories260K.Llama2cTokenizer);
        tmp.Write("cut.bin", bin[..^3]);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => TokenizerFactory.Create(TokenizerSpec.ForFile("cut.bin")!, tmp.Path));
        StringAssert.Contains(e.Message, "cut.bin");
        StringAssert.Contains(e.Message, "length");

        var wrong = bin.ToArray();
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(wrong, -5);
        tmp.Write("header.bin", wrong);
        e = Assert.ThrowsExactly<OnnxGptException>(() => TokenizerFactory.Create(TokenizerSpec.ForFile("header.bin")!, tmp.Path));
        StringAssert.Contains(e.Message, "maximum token length is -5");

        tmp.Write("junk.model", Encoding.UTF8.GetBytes("not a protobuf at all, just text"));
        e = Assert.ThrowsExactly<OnnxGptException>(() => TokenizerFactory.Create(TokenizerSpec.ForFile("junk.model")!, tmp.Path));
        StringAssert.Contains(e.Message, "junk.model");
    }
}

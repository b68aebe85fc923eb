using System.Text;
using Microsoft.ML.Tokenizers;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Tokenization;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Tokenization;

[TestClass]
public sealed class ByteLevelBpeTokenizerTests
{
    // Golden ids for tiny-random-gpt2's 1000-token BPE, computed by an independent Python transcription of GPT-2's
    // encoder.py (regex split, byte-to-unicode table, rank-ordered merges) over the same vocab.json + merges.txt.
    private static readonly (string Text, int[] Ids)[] TinyGolden =
    [
        ("Hello world, the quick brown fox jumps over the lazy dog.",
            [40, 416, 79, 206, 750, 12, 198, 755, 673, 219, 228, 574, 214, 79, 88, 536, 327, 80, 83, 547, 198, 250, 949, 89, 231, 432, 14]),
        ("I've got 12345 reasons; they'll say \"no\"  -- twice!   OK",
            [41, 7, 711, 267, 279, 837, 19, 20, 21, 237, 599, 83, 27, 543, 7, 800, 203, 288, 239, 78, 79, 2, 159, 159, 13, 13, 194, 87, 570, 1, 159, 159, 339, 43]),
        ("a<|endoftext|>b near episode described", [65, 0, 66, 996, 997, 999, 204]),
        ("  leading spaces and trailing  ", [159, 950, 223, 405, 257, 216, 225, 836, 243, 223, 159, 159]),
    ];

    private static ITextTokenizer TinyFromFiles() =>
        TokenizerFactory.Create(new TokenizerSpec { Kind = TokenizerSpec.BpeKind }, TestPaths.TinyRandomGpt2);

    private static ITextTokenizer TinyFromTokenizerJson() =>
        TokenizerFactory.Create(new TokenizerSpec { Kind = TokenizerSpec.TokenizerJsonKind }, TestPaths.TinyRandomGpt2);

    [TestMethod]
    public void VocabMergesAndTokenizerJsonGiveTheGoldenIdsAndRoundTrip()
    {
        var fromFiles = TinyFromFiles();
        var fromJson = TinyFromTokenizerJson();
        Assert.AreEqual(1000, fromFiles.VocabularySize);
        Assert.AreEqual(1000, fromJson.VocabularySize);
        foreach (var (text, golden) in TinyGolden)
        {
            CollectionAssert.AreEqual(golden, fromFiles.Encode(text), $"bpe: '{text}'");
            CollectionAssert.AreEqual(golden, fromJson.Encode(text), $"tokenizer.json: '{text}'");
            Assert.AreEqual(text, fromFiles.Decode(golden));
            Assert.AreEqual(text, fromJson.Decode(golden));
        }
    }

    [TestMethod]
    public void EndOfTextIsASpecialTokenInBothPaths()
    {
        foreach (var tokenizer in new[] { TinyFromFiles(), TinyFromTokenizerJson() })
        {
            Assert.IsTrue(tokenizer.IsSpecialToken(0), tokenizer.Kind);
            Assert.IsFalse(tokenizer.IsSpecialToken(65), tokenizer.Kind);
            Assert.AreEqual("<|endoftext|>", Encoding.UTF8.GetString(tokenizer.GetTokenBytes(0)));
            Assert.AreEqual(" near", Encoding.UTF8.GetString(tokenizer.GetTokenBytes(996)), "Ġ maps back to a space byte");
        }
    }

    [TestMethod]
    public void ByteMissingFromATrimmedVocabularyIsAnErrorNamingCharacterAndPosition()
    {
        // tiny-random-gpt2 keeps only 194 base symbols: the lead byte 0xF0 of an emoji has no token.
        var e = Assert.ThrowsExactly<OnnxGptException>(() => TinyFromFiles().Encode("ok 🙂"));
        StringAssert.Contains(e.Message, "U+1F642");
        StringAssert.Contains(e.Message, "position 3");
        StringAssert.Contains(e.Message, "0xF0");
    }

    [TestMethod]
    public void Gpt2EncodesHelloWorldAsPublished()
    {
        var gpt2 = TokenizerFactory.Create(TokenizerSpec.Gpt2);
        Assert.AreEqual(50257, gpt2.VocabularySize);
        CollectionAssert.AreEqual(new[] { 15496, 995 }, gpt2.Encode("Hello world"));
        Assert.AreEqual("Hello world", gpt2.Decode([15496, 995]));
        Assert.IsTrue(gpt2.IsSpecialToken(50256));
        Assert.AreEqual("<|endoftext|>", gpt2.Decode([50256]));
        CollectionAssert.AreEqual(new[] { 64, 50256, 65 }, gpt2.Encode("a<|endoftext|>b"));
        Assert.AreSame(gpt2, TokenizerFactory.Create(TokenizerSpec.Gpt2), "GPT-2's tokenizer is built once and shared");
    }

    [TestMethod]
    public void Gpt2TokenBytesAgreeWithTheLibraryDecoderForEveryCompleteToken()
    {
        var gpt2 = TokenizerFactory.Create(TokenizerSpec.Gpt2);
        var reference = TiktokenTokenizer.CreateForModel("gpt2");
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        var checkedTokens = 0;
        for (var id = 0; id < 50256; id++)
        {
            var bytes = gpt2.GetTokenBytes(id).ToArray();
            Assert.IsNotEmpty(bytes, $"token {id}");
            string text;
            try
            {
                text = strict.GetString(bytes);
            }
            catch (DecoderFallbackException)
            {
                continue; // A piece of a multi-byte character: the library can only show it as U+FFFD.
            }

            Assert.AreEqual(reference.Decode([id]), text, $"token {id}");
            checkedTokens++;
        }

        Assert.IsGreaterThan(49_000, checkedTokens, "nearly all GPT-2 tokens are complete UTF-8");
    }

    [TestMethod]
    public void Gpt2RoundTripsMixedScriptText()
    {
        var gpt2 = TokenizerFactory.Create(TokenizerSpec.Gpt2);
        const string text = "Grüße, 🙂 日本語 — naïve café\n\ttabs  and  spaces ✓ 12345";
        var ids = gpt2.Encode(text);
        Assert.AreEqual(text, gpt2.Decode(ids));
        CollectionAssert.AreEqual(TiktokenTokenizer.CreateForModel("gpt2").EncodeToIds(text).ToArray(), ids);
    }

    [TestMethod]
    public void DecodingAnIdOutsideTheVocabularyNamesItAndTheSize()
    {
        var tokenizer = TinyFromFiles();
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => tokenizer.Decode([5, 1000]));
        StringAssert.Contains(e.Message, "Token id 1000");
        StringAssert.Contains(e.Message, "1000 ids");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => tokenizer.GetTokenBytes(-1));
    }
}

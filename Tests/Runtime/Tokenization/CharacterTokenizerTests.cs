using System.Text;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Tests.Runtime.Tokenization;

[TestClass]
public sealed class CharacterTokenizerTests
{
    private static readonly TokenizerSpec Spec = new()
    {
        Kind = TokenizerSpec.CharKind,
        Characters = ["\n", " ", "!", "a", "b", "c", "d", "e", "h", "l", "o", "r", "w", "é", "🙂"],
    };

    [TestMethod]
    public void TokenIIsTheIthCharacterAndTextRoundTrips()
    {
        var tokenizer = TokenizerFactory.Create(Spec);
        Assert.AreEqual(15, tokenizer.VocabularySize);
        Assert.AreEqual(TokenizerSpec.CharKind, tokenizer.Kind);
        const string text = "hello world!\nbé 🙂";
        var ids = tokenizer.Encode(text);
        CollectionAssert.AreEqual(new[] { 8, 7, 9, 9, 10, 1, 12, 10, 11, 9, 6, 2, 0, 4, 13, 1, 14 }, ids);
        Assert.AreEqual(text, tokenizer.Decode(ids));
        CollectionAssert.AreEqual(Encoding.UTF8.GetBytes("🙂"), tokenizer.GetTokenBytes(14).ToArray());
        Assert.IsFalse(tokenizer.IsSpecialToken(0));
    }

    [TestMethod]
    public void UnknownCharacterIsNamedWithItsPosition()
    {
        var tokenizer = TokenizerFactory.Create(Spec);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => tokenizer.Encode("hello 🙂 wOrld"));
        StringAssert.Contains(e.Message, "'O'");
        StringAssert.Contains(e.Message, "position 10"); // UTF-16 index: the emoji counts two.
        StringAssert.Contains(e.Message, "15-character vocabulary");
    }

    [TestMethod]
    public void LoneSurrogateInTextIsAnError()
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() => TokenizerFactory.Create(Spec).Encode("ab\uD83Dc"));
        StringAssert.Contains(e.Message, "U+D83D");
        StringAssert.Contains(e.Message, "position 2");
    }

    [TestMethod]
    [DataRow(new[] { "a", "bc" }, "entry 1 is 'bc'")]
    [DataRow(new[] { "a", "" }, "entry 1 is an empty string")]
    [DataRow(new[] { "x", "y", "x" }, "appears at entries 0 and 2")]
    public void BadCharacterListsAreRejected(string[] characters, string expected)
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() => new CharacterTokenizer(characters, "model.onnx tokenizer"));
        StringAssert.Contains(e.Message, expected);
        StringAssert.Contains(e.Message, "model.onnx tokenizer");
    }

    [TestMethod]
    public void LoneSurrogateEntryIsRejected()
    {
        // Built here: attribute data cannot hold a lone surrogate.
        var e = Assert.ThrowsExactly<OnnxGptException>(() => new CharacterTokenizer(["a", "\uDE42"]));
        StringAssert.Contains(e.Message, "entry 1 is U+DE42;");
    }

    [TestMethod]
    public void IdsOutsideTheVocabularyAreRejected()
    {
        var tokenizer = TokenizerFactory.Create(Spec);
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => tokenizer.Decode([1, 15]));
        StringAssert.Contains(e.Message, "15 ids");
    }
}

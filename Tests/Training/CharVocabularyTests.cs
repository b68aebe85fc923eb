using OnnxGpt.Contracts;
using OnnxGpt.Tests.Support;
using OnnxGpt.Training;

namespace OnnxGpt.Tests.Training;

[TestClass]
public sealed class CharVocabularyTests
{
    [TestMethod]
    public void CharactersAreDistinctAndSortedByCodePoint()
    {
        var v = CharVocabulary.FromText("hello, world\n");
        CollectionAssert.AreEqual(new[] { "\n", " ", ",", "d", "e", "h", "l", "o", "r", "w" }, v.ToSpec().Characters!.ToArray());
        CollectionAssert.AreEqual(new[] { 5, 4, 6, 6, 7 }, v.Encode("hello"));
        Assert.AreEqual("world", v.Decode(v.Encode("world")));
    }

    [TestMethod]
    public void TinyShakespeareHas65Characters()
    {
        var text = File.ReadAllText(TestPaths.TinyShakespeare);
        var v = CharVocabulary.FromText(text);
        Assert.AreEqual(65, v.Count);
        Assert.AreEqual("\n", v.ToSpec().Characters![0]);
    }

    [TestMethod]
    public void SpecRoundTripsThroughJsonIncludingSurrogatePairs()
    {
        var v = CharVocabulary.FromText("ab😀é");
        var spec = TokenizerSpec.FromJson(v.ToSpec().ToJson());
        Assert.AreEqual(TokenizerSpec.CharKind, spec.Kind);
        var back = CharVocabulary.FromSpec(spec);
        CollectionAssert.AreEqual(v.Characters.ToArray(), back.Characters.ToArray());
        Assert.AreEqual("😀a", back.Decode(back.Encode("😀a")));
        Assert.AreEqual(2, back.Encode("😀a").Length);
    }

    [TestMethod]
    public void UnknownCharacterNamesItsCodePointAndIndex()
    {
        var v = CharVocabulary.FromText("abc");
        var e = Assert.ThrowsExactly<OnnxGptException>(() => v.Encode("abz"));
        StringAssert.Contains(e.Message, "U+007A");
        StringAssert.Contains(e.Message, "index 2");
    }

    [TestMethod]
    public void UnsortedSpecIsRejected()
    {
        var spec = new TokenizerSpec { Kind = TokenizerSpec.CharKind, Characters = ["b", "a"] };
        var e = Assert.ThrowsExactly<OnnxGptException>(() => CharVocabulary.FromSpec(spec, "x.json"));
        StringAssert.Contains(e.Message, "x.json");
    }

    [TestMethod]
    public void CorpusSplitsNinetyTenInOrder()
    {
        var v = CharVocabulary.FromText("abcdefghij");
        var corpus = new TextCorpus(v, v.Encode("abcdefghij"));
        Assert.AreEqual("abcdefghi", v.Decode(corpus.Train));
        Assert.AreEqual("j", v.Decode(corpus.Validation));
    }

    [TestMethod]
    public void EvaluationWindowsAreFixedAndInsideTheData()
    {
        var windows = TextCorpus.EvaluationWindows(1001, 10, 20);
        Assert.HasCount(20, windows);
        Assert.AreEqual(0, windows[0]);
        Assert.IsTrue(windows.All(w => w % 10 == 0 && w + 10 + 1 <= 1001));
        CollectionAssert.AreEqual(windows, TextCorpus.EvaluationWindows(1001, 10, 20));
        Assert.HasCount(100, TextCorpus.EvaluationWindows(1001, 10, 1000));
    }
}

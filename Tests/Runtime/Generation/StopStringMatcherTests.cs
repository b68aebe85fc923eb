using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Tests.Runtime.Generation;

[TestClass]
public sealed class StopStringMatcherTests
{
    private static (string Emitted, StopStringMatcher Matcher) Feed(string[] stops, params string[] pieces)
    {
        var matcher = new StopStringMatcher(stops);
        var emitted = string.Concat(pieces.Select(matcher.Push));
        return (emitted, matcher);
    }

    [TestMethod]
    public void StopStringSpanningThreeTokensIsCutAndNotEmitted()
    {
        var matcher = new StopStringMatcher(["###"]);
        Assert.AreEqual("Hello ", matcher.Push("Hello #"));
        Assert.AreEqual("#", matcher.HeldText);
        Assert.AreEqual(string.Empty, matcher.Push("#"));
        Assert.IsFalse(matcher.IsStopped);
        Assert.AreEqual(string.Empty, matcher.Push("# world"));
        Assert.IsTrue(matcher.IsStopped);
        Assert.AreEqual("###", matcher.MatchedStopString);
        Assert.AreEqual(string.Empty, matcher.Push("more"), "nothing after a stop");
        Assert.AreEqual(string.Empty, matcher.Flush());
    }

    [TestMethod]
    public void FalseStartIsReleasedOnceItCannotBeAStop()
    {
        var matcher = new StopStringMatcher(["abc"]);
        Assert.AreEqual("x", matcher.Push("xa"));
        Assert.AreEqual(string.Empty, matcher.Push("b"));
        Assert.AreEqual("abd", matcher.Push("d"));
        Assert.IsFalse(matcher.IsStopped);
    }

    [TestMethod]
    public void OverlappingPrefixesAreHandled()
    {
        var (emitted, matcher) = Feed(["aab"], "a", "a", "a", "b", "zzz");
        Assert.AreEqual("a", emitted);
        Assert.IsTrue(matcher.IsStopped);
    }

    [TestMethod]
    public void EarliestStopWinsAndTextAfterItIsDropped()
    {
        var (emitted, matcher) = Feed(["\n\nUser:", "END"], "The answer is 4.", " END\n\nUser: hi");
        Assert.AreEqual("The answer is 4. ", emitted);
        Assert.AreEqual("END", matcher.MatchedStopString);
    }

    [TestMethod]
    public void StopInsideOneTokenIsFound()
    {
        var (emitted, matcher) = Feed(["</s>"], "one", " two</s>three");
        Assert.AreEqual("one two", emitted);
        Assert.IsTrue(matcher.IsStopped);
    }

    [TestMethod]
    public void FlushReleasesAHeldTailWhenGenerationEnds()
    {
        var matcher = new StopStringMatcher(["\n\n"]);
        Assert.AreEqual("line", matcher.Push("line\n"));
        Assert.AreEqual("\n", matcher.Flush());
        Assert.IsFalse(matcher.IsStopped);
    }

    [TestMethod]
    public void WithoutStopStringsTextPassesStraightThrough()
    {
        var (emitted, matcher) = Feed([], "a", "b#", "c");
        Assert.AreEqual("ab#c", emitted);
        Assert.AreEqual(string.Empty, matcher.Flush());
    }

    [TestMethod]
    public void ConcatenationOfEmittedTextIsAlwaysThePrefixBeforeTheFirstStop()
    {
        // Every way of cutting the text into pieces gives the same result.
        const string text = "ab<|im_end|>c<|im_end|>";
        for (var cut1 = 0; cut1 <= text.Length; cut1++)
        {
            for (var cut2 = cut1; cut2 <= text.Length; cut2++)
            {
                var (emitted, matcher) = Feed(["<|im_end|>"], text[..cut1], text[cut1..cut2], text[cut2..]);
                Assert.AreEqual("ab", emitted + matcher.Flush(), $"cuts {cut1}, {cut2}");
                Assert.IsTrue(matcher.IsStopped);
            }
        }
    }

    [TestMethod]
    public void EmptyStopStringIsRejected()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => new StopStringMatcher(["ok", ""]));
        StringAssert.Contains(e.Message, "Stop string 1 is empty");
    }
}

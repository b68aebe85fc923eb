using System.Text;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Tests.Runtime.Tokenization;

[TestClass]
public sealed class StreamingDecoderTests
{
    private static readonly ITextTokenizer Gpt2 = TokenizerFactory.Create(TokenizerSpec.Gpt2);

    [TestMethod]
    [DataRow("🙂")]
    [DataRow("日本語")]
    public void Gpt2SplitsTheseCharactersAcrossTokens(string text)
    {
        // The premise of the streaming tests: some token boundary falls inside a UTF-8 character.
        var ids = Gpt2.Encode(text);
        Assert.IsGreaterThan(1, ids.Length);
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        var splitInside = ids.Count(id => !IsCompleteUtf8(strict, Gpt2.GetTokenBytes(id)));
        Assert.IsGreaterThan(0, splitInside, $"'{text}' -> [{string.Join(", ", ids)}]");
        CollectionAssert.AreEqual(Encoding.UTF8.GetBytes(text), ids.SelectMany(id => Gpt2.GetTokenBytes(id).ToArray()).ToArray());
    }

    [TestMethod]
    [DataRow("🙂")]
    [DataRow("日本語")]
    [DataRow("Hello 🙂 world, 日本語 and Grüße 👩‍👩‍👧 ✓ done.")]
    public void StreamedPiecesNeverBreakACharacterAndAddUpToTheFullDecode(string text)
    {
        var ids = Gpt2.Encode(text);
        var decoder = new StreamingDecoder(Gpt2);
        var pieces = new List<string>();
        var held = 0;
        foreach (var id in ids)
        {
            var piece = decoder.Append(id);
            held += piece.Length == 0 ? 1 : 0;
            pieces.Add(piece);
            Assert.IsFalse(piece.Contains('\uFFFD'), $"piece '{piece}' after token {id} holds U+FFFD");
            Assert.IsFalse(HasLoneSurrogate(piece), $"piece after token {id} holds a lone surrogate");
        }

        pieces.Add(decoder.Flush());
        Assert.AreEqual(string.Empty, pieces[^1]);
        Assert.AreEqual(Gpt2.Decode(ids), string.Concat(pieces));
        Assert.AreEqual(text, string.Concat(pieces));
        Assert.IsGreaterThan(0, held, "some token completed no character and was held back");
    }

    [TestMethod]
    public void FlushEmitsAnIncompleteTrailingCharacterAsReplacement()
    {
        var ids = Gpt2.Encode("ok🙂");
        var decoder = new StreamingDecoder(Gpt2);
        var text = new StringBuilder();
        foreach (var id in ids[..^1])
        {
            text.Append(decoder.Append(id));
        }

        Assert.AreEqual("ok", text.ToString());
        Assert.IsTrue(decoder.HasPendingBytes);
        Assert.AreEqual("\uFFFD", decoder.Flush());
        Assert.IsFalse(decoder.HasPendingBytes);
        Assert.AreEqual("x", decoder.Append(Gpt2.Encode("x")[0]), "after a flush the decoder starts afresh");
    }

    [TestMethod]
    public void SpecialTokensCanBeLeftOut()
    {
        var ids = Gpt2.Encode("a<|endoftext|>b");
        Assert.AreEqual("a<|endoftext|>b", string.Concat(ids.Select(new StreamingDecoder(Gpt2).Append)));
        Assert.AreEqual("ab", string.Concat(ids.Select(new StreamingDecoder(Gpt2, skipSpecialTokens: true).Append)));
    }

    [TestMethod]
    public void LongStreamsDecodeInConstantTimePerToken()
    {
        // 20,000 tokens of mixed text: a decoder whose cost grew with the text would take quadratic time here.
        var ids = Gpt2.Encode(string.Concat(Enumerable.Repeat("Streaming 日本語 text 🙂, ", 1000)));
        Assert.IsGreaterThan(10_000, ids.Length);
        var decoder = new StreamingDecoder(Gpt2);
        var total = new StringBuilder();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        foreach (var id in ids)
        {
            total.Append(decoder.Append(id));
        }

        watch.Stop();
        Assert.AreEqual(Gpt2.Decode(ids), total.ToString());
        Assert.IsLessThan(2_000, watch.ElapsedMilliseconds, $"{ids.Length} tokens took {watch.ElapsedMilliseconds} ms");
    }

    private static bool IsCompleteUtf8(UTF8Encoding strict, ReadOnlySpan<byte> bytes)
    {
        try
        {
            strict.GetString(bytes);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }

    private static bool HasLoneSurrogate(string s)
    {
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(s[i]))
            {
                return true;
            }
        }

        return false;
    }
}

using System.Text;
using OnnxGpt.Contracts;
using OnnxGpt.Tests.Support;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Tests.Runtime.Constraints;

/// <summary>The vocabularies the constraint tests run over: the real GPT-2 ones and character ones.</summary>
internal static class ConstraintVocabularies
{
    private static readonly Lazy<ITextTokenizer> TinyBpe = new(() =>
        TokenizerFactory.Create(new TokenizerSpec { Kind = TokenizerSpec.BpeKind }, TestPaths.TinyRandomGpt2));

    private static readonly Lazy<ITextTokenizer> JsonChars = new(() =>
        new CharacterTokenizer([.. Enumerable.Range(0x20, 0x5F).Select(c => ((char)c).ToString()), "\n", "\t", "é", "ß", "€", "😀"]));

    /// <summary>GPT-2's own 50257 tokens (byte-level BPE, multi-character tokens across JSON punctuation, <c>&lt;|endoftext|&gt;</c>).</summary>
    public static ITextTokenizer Gpt2 => TokenizerFactory.Create(new TokenizerSpec { Kind = TokenizerSpec.Gpt2Kind });

    /// <summary>tiny-random-gpt2's 1000-token byte-level BPE (Tests/Data).</summary>
    public static ITextTokenizer TinyGpt2 => TinyBpe.Value;

    /// <summary>A character vocabulary with all of printable ASCII, two controls and a few multi-byte characters.</summary>
    public static ITextTokenizer Characters => JsonChars.Value;

    public static ITextTokenizer Get(string name) => name switch
    {
        "gpt2" => Gpt2,
        "tiny-gpt2" => TinyGpt2,
        "char" => Characters,
        "small" => Small(),
        _ => throw new ArgumentException(name),
    };

    /// <summary>
    /// A small vocabulary for the brute-force oracle: single characters, pieces that cross JSON structure
    /// (<c>{"</c>, <c>":</c>, <c>"},</c>), whitespace runs, partial UTF-8 bytes (an emoji in two halves, a lone
    /// lead byte), and 300 tokens of tiny-random-gpt2 picked at random.
    /// </summary>
    public static ITextTokenizer Small()
    {
        var tokens = new List<byte[]>();
        foreach (char c in " !\"#,-.0123456789:;ABCXYZ[\\]_abcdefghijklmnopqrstuvwxyz{}\n\t")
        {
            tokens.Add([(byte)c]);
        }

        foreach (var s in new[] { "{\"", "\":", "\",", "\"}", "},", "[{", " \"", "true", "null", "fal", "se", "12", "-0", ".5", "e+", "\n  ", "é", "\\n", "\\u00", "\"\"", "[]", "{}", "ab\"", ":\"", "Zz-1", "00" })
        {
            tokens.Add(Encoding.UTF8.GetBytes(s));
        }

        tokens.Add([0xF0, 0x9F]);
        tokens.Add([0x98, 0x80]);
        tokens.Add([0xC3]);
        tokens.Add([0xA9, 0x22]);
        var tiny = TinyGpt2;
        var random = new Random(7);
        for (int i = 0; i < 300; i++)
        {
            int id = random.Next(tiny.VocabularySize);
            if (!tiny.IsSpecialToken(id))
            {
                tokens.Add(tiny.GetTokenBytes(id).ToArray());
            }
        }

        tokens.Add(Encoding.UTF8.GetBytes("<|end|>"));
        return new ByteTokenizer(tokens, new HashSet<int> { tokens.Count - 1 });
    }
}

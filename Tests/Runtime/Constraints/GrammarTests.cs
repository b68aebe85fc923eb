using System.Text;
using OnnxGpt.Runtime.Constraints;

namespace OnnxGpt.Tests.Runtime.Constraints;

/// <summary>The grammar format: parsing, printing back, checks, and what a grammar accepts byte by byte.</summary>
[TestClass]
public sealed class GrammarTests
{
    private static readonly ByteTokenizer Bytes = new([.. Enumerable.Range(0, 256).Select(b => new[] { (byte)b })]);

    /// <summary>Whether the grammar accepts <paramref name="text"/> whole (every byte a token).</summary>
    private static bool Accepts(OutputConstraint constraint, string text)
    {
        var state = constraint.Start(Bytes);
        foreach (byte b in Encoding.UTF8.GetBytes(text))
        {
            if (!state.TryAdvance(b))
            {
                return false;
            }
        }

        return state.IsComplete;
    }

    [TestMethod]
    [DataRow("ab", true)]
    [DataRow("aab", true)]
    [DataRow("b", false)]
    [DataRow("abc", false)]
    [DataRow("x12", true)]
    [DataRow("x1234", false)]
    [DataRow("é€😀", true)]
    [DataRow("", false)]
    public void RulesLiteralsClassesAndRepetitionsMatchAsWritten(string text, bool expected)
    {
        var constraint = OutputConstraint.FromGrammar("""
            # a comment
            root ::= a-run "b" | "x" digit{1,3} | unicode
            a-run ::= "a"+
            digit ::= [0-9]
            unicode ::= [é] [^a-z\n] .
            """);
        Assert.AreEqual(expected, Accepts(constraint, text), text);
    }

    [TestMethod]
    public void PrintingAGrammarAndParsingItBackGivesTheSameLanguage()
    {
        foreach (var (name, schema) in TestSchemas.All)
        {
            var grammar = Grammar.FromJsonSchema(schema);
            var printed = grammar.ToString();
            var again = Grammar.Parse(printed, "printed");
            Assert.AreEqual(printed, again.ToString(), $"{name}: print, parse, print is stable");
        }
    }

    [TestMethod]
    [DataRow("root ::= \"a\" (", "grammar:1:15: expected ')'")]
    [DataRow("root ::= \"abc", "the literal is not closed")]
    [DataRow("root ::= [z-a]", "backwards")]
    [DataRow("root ::= item", "refers to rule 'item', which is not defined")]
    [DataRow("start ::= \"a\"", "there is no rule 'root'")]
    [DataRow("root ::= root \"a\" | \"b\"", "left-recursive (root -> root")]
    [DataRow("root ::= x\nx ::= \"\" root \"a\"", "left-recursive")]
    [DataRow("root ::= \"a\"{5,2}", "maximum below its minimum")]
    [DataRow("root ::= \"a\"{999999}", "more than the limit of 100000")]
    [DataRow("root ::= \"a\"\nroot ::= \"b\"", "defined twice")]
    [DataRow("root ::= \"\\q\"", "unknown escape '\\q'")]
    [DataRow("root ::= (\"a\"{1000}){1000}{1000}", "more than 1048576 elements")]
    public void BadGrammarsAreRefusedWithWhereAndWhat(string text, string expected)
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() => Grammar.Parse(text));
        StringAssert.Contains(e.Message, expected);
    }

    [TestMethod]
    public void ATailRecursiveAndAnEmptyLoopingGrammarRun()
    {
        // (a?)* loops on the empty string: the matcher must neither hang nor refuse it.
        var constraint = OutputConstraint.FromGrammar("root ::= (\"a\"?)* \"b\"");
        Assert.IsTrue(Accepts(constraint, "aaab"));
        Assert.IsTrue(Accepts(constraint, "b"));
        var nested = OutputConstraint.FromGrammar("root ::= \"(\" root \")\" | \"x\"");
        Assert.IsTrue(Accepts(nested, new string('(', 300) + "x" + new string(')', 300)));
        Assert.IsFalse(Accepts(nested, "((x)"));
    }

    [TestMethod]
    public void UnicodeClassesBecomeExactlyTheUtf8OfTheirCharacters()
    {
        // Every scalar value (surrogates excluded) against three classes: the byte-level automaton accepts a
        // character's UTF-8 exactly when the class holds it.
        var classes = new[]
        {
            ("[^\"\\\\\\x00-\\x1F]", (Func<int, bool>)(c => c >= 0x20 && c != '"' && c != '\\')),
            ("[a-zé-ÿ\\u0400-\\u04FF\\U0001F600-\\U0001F64F]", c => c is >= 'a' and <= 'z' or >= 0xE9 and <= 0xFF or >= 0x400 and <= 0x4FF or >= 0x1F600 and <= 0x1F64F),
            ("[\\u07FF-\\u0801\\uFFFF\\U00010000\\U0010FFFF]", c => c is >= 0x7FF and <= 0x801 or 0xFFFF or 0x10000 or 0x10FFFF),
        };
        Span<byte> utf8 = stackalloc byte[4];
        foreach (var (cls, holds) in classes)
        {
            var constraint = OutputConstraint.FromGrammar($"root ::= {cls}");
            var automaton = constraint.Compile(Bytes);
            var start = automaton.Start();
            for (int c = 0; c <= 0x10FFFF; c++)
            {
                if (c is >= 0xD800 and <= 0xDFFF)
                {
                    continue;
                }

                int n = new Rune(c).EncodeToUtf8(utf8);
                var state = start;
                for (int i = 0; i < n && !state.IsDead; i++)
                {
                    state = state.Tables.Step(state, utf8[i]);
                }

                if (state.Accepting != holds(c))
                {
                    Assert.Fail($"{cls}: U+{c:X4} is {(holds(c) ? "in" : "not in")} the class but the automaton says otherwise");
                }
            }

            // And no byte string that is not UTF-8 gets through: a lone continuation byte, an overlong form, a surrogate.
            foreach (var bad in new byte[][] { [0x80], [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF] })
            {
                var state = start;
                foreach (byte b in bad)
                {
                    state = state.Tables.Step(state, b);
                }

                Assert.IsFalse(state.Accepting, $"{cls}: {Convert.ToHexString(bad)} is not UTF-8");
            }
        }
    }
}

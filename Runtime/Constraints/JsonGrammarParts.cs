namespace OnnxGpt.Runtime.Constraints;

/// <summary>
/// The pieces of JSON every compiled schema shares, as grammar rules (RFC 8259, narrowed where noted): whitespace
/// (at most <see cref="MaxWhitespace"/> characters between tokens, so a model cannot pad forever), strings (no lone
/// surrogate escapes), integers of at most <see cref="MaxIntegerDigits"/> digits (they fit a 32-bit int) and numbers
/// with at most <see cref="MaxNumberDigits"/> digits before and after the point and a two-digit exponent (they fit a
/// double), booleans, null, and any JSON value.
/// </summary>
internal static class JsonGrammarParts
{
    public const int MaxWhitespace = 8;
    public const int MaxIntegerDigits = 9;
    public const int MaxNumberDigits = 15;

    public const string WsRule = "ws", ValueRule = "value", ObjectRule = "object", ArrayRule = "array", StringRule = "string",
        CharRule = "char", NumberRule = "number", IntegerRule = "integer", BooleanRule = "boolean", NullRule = "null";

    public static readonly CodePointSet Digits = CodePointSet.FromRanges([('0', '9')]);
    public static readonly CodePointSet Hex = CodePointSet.FromRanges([('0', '9'), ('a', 'f'), ('A', 'F')]);

    /// <summary>Characters a JSON string holds as themselves: all but '"', '\' and the controls U+0000..U+001F.</summary>
    public static readonly CodePointSet Unescaped = CodePointSet.FromRanges([('"', '"'), ('\\', '\\'), (0, 0x1F)]).Complement();

    public static GrammarNode Lit(string text) => new LiteralNode(text);

    public static GrammarNode Ref(string name) => new RuleRefNode(name);

    /// <summary>Items in order; empty literals left out and nested sequences flattened, so the grammar prints plainly.</summary>
    public static GrammarNode Seq(params GrammarNode[] items)
    {
        var flat = new List<GrammarNode>();
        foreach (var item in items)
        {
            if (item is SequenceNode inner)
            {
                flat.AddRange(inner.Items);
            }
            else if (item is not LiteralNode { Text.Length: 0 })
            {
                flat.Add(item);
            }
        }

        return flat.Count == 1 ? flat[0] : new SequenceNode(flat);
    }

    public static GrammarNode Choice(params GrammarNode[] alternatives) => alternatives.Length == 1 ? alternatives[0] : new ChoiceNode(alternatives);

    public static GrammarNode Class(CodePointSet set) => new CharClassNode(set);

    public static GrammarNode Repeat(GrammarNode item, int min, int? max) => new RepeatNode(item, min, max);

    /// <summary>The shared rules a schema's grammar may refer to (unused ones are harmless).</summary>
    public static IEnumerable<KeyValuePair<string, GrammarNode>> Rules()
    {
        var hexDigit = Class(Hex);
        var nonSurrogateEscape = Choice(
            Seq(Class(CodePointSet.FromRanges([('0', '9'), ('a', 'c'), ('A', 'C'), ('e', 'f'), ('E', 'F')])), hexDigit, hexDigit, hexDigit),
            Seq(Class(CodePointSet.Of("dD")), Class(CodePointSet.FromRanges([('0', '7')])), hexDigit, hexDigit));
        yield return new(WsRule, Repeat(Class(CodePointSet.Of(" \t\n")), 0, MaxWhitespace));
        yield return new(CharRule, Choice(
            Class(Unescaped),
            Seq(Lit("\\"), Choice(Class(CodePointSet.Of("\"\\/bfnrt")), Seq(Lit("u"), nonSurrogateEscape)))));
        yield return new(StringRule, Seq(Lit("\""), Repeat(Ref(CharRule), 0, null), Lit("\"")));
        var integerPart = (int digits) => Choice(Lit("0"), Seq(Class(CodePointSet.FromRanges([('1', '9')])), Repeat(Class(Digits), 0, digits - 1)));
        yield return new(IntegerRule, Seq(Repeat(Lit("-"), 0, 1), integerPart(MaxIntegerDigits)));
        yield return new(NumberRule, Seq(
            Repeat(Lit("-"), 0, 1),
            integerPart(MaxNumberDigits),
            Repeat(Seq(Lit("."), Repeat(Class(Digits), 1, MaxNumberDigits)), 0, 1),
            Repeat(Seq(Class(CodePointSet.Of("eE")), Repeat(Class(CodePointSet.Of("+-")), 0, 1), Repeat(Class(Digits), 1, 2)), 0, 1)));
        yield return new(BooleanRule, Choice(Lit("true"), Lit("false")));
        yield return new(NullRule, Lit("null"));
        yield return new(ValueRule, Choice(Ref(ObjectRule), Ref(ArrayRule), Ref(StringRule), Ref(NumberRule), Ref(BooleanRule), Ref(NullRule)));
        var member = Seq(Ref(StringRule), Ref(WsRule), Lit(":"), Ref(WsRule), Ref(ValueRule), Ref(WsRule));
        yield return new(ObjectRule, Seq(Lit("{"), Ref(WsRule), Repeat(Seq(member, Repeat(Seq(Lit(","), Ref(WsRule), member), 0, null)), 0, 1), Lit("}")));
        var element = Seq(Ref(ValueRule), Ref(WsRule));
        yield return new(ArrayRule, Seq(Lit("["), Ref(WsRule), Repeat(Seq(element, Repeat(Seq(Lit(","), Ref(WsRule), element), 0, null)), 0, 1), Lit("]")));
    }

    /// <summary>One character of <paramref name="set"/> as it is written inside a JSON string: itself, or escaped where JSON requires it.</summary>
    public static GrammarNode JsonChar(CodePointSet set)
    {
        var alternatives = new List<GrammarNode>();
        var plain = set.Intersect(Unescaped);
        if (!plain.IsEmpty)
        {
            alternatives.Add(Class(plain));
        }

        if (set.Contains('"'))
        {
            alternatives.Add(Lit("\\\""));
        }

        if (set.Contains('\\'))
        {
            alternatives.Add(Lit("\\\\"));
        }

        var controls = set.Intersect(CodePointSet.FromRanges([(0, 0x1F)]));
        if (controls.Equals(CodePointSet.FromRanges([(0, 0x1F)])))
        {
            alternatives.Add(Seq(Lit("\\u00"), Class(CodePointSet.Of("01")), Class(Hex)));
        }
        else
        {
            foreach (var (low, high) in controls.Ranges)
            {
                for (int c = low; c <= high; c++)
                {
                    alternatives.Add(Lit($"\\u{c:x4}"));
                }
            }
        }

        return alternatives.Count == 0 ? Class(CodePointSet.Empty) : Choice([.. alternatives]);
    }
}

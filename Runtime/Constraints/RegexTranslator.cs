using System.Globalization;
using static OnnxGpt.Runtime.Constraints.JsonGrammarParts;

namespace OnnxGpt.Runtime.Constraints;

/// <summary>
/// A JSON Schema <c>pattern</c> (ECMA-262 syntax, the documented subset) as the grammar of a JSON string's
/// contents: each character the pattern matches is written as JSON writes it (escaped where JSON requires). As in
/// JSON Schema, a pattern matches anywhere in the string unless anchored: an alternative without <c>^</c> may be
/// preceded by any text, one without <c>$</c> followed by any. The subset: literals, <c>.</c>, classes
/// <c>[a-z]</c> <c>[^...]</c>, <c>\d \w \s \D \W \S</c>, escapes <c>\n \r \t \f \v \0 \xHH \uHHHH</c> and of
/// punctuation, groups <c>( )</c> <c>(?: )</c> <c>(?&lt;name&gt; )</c>, <c>|</c>, quantifiers <c>* + ? {n} {n,}
/// {n,m}</c> (lazy forms match the same strings), and <c>^</c>/<c>$</c> at the ends of the pattern's alternatives.
/// Refused: lookaround, backreferences, <c>\b</c>/<c>\B</c>, anchors elsewhere, Unicode property classes.
/// </summary>
internal sealed class RegexTranslator
{
    private static readonly CodePointSet DigitSet = CodePointSet.FromRanges([('0', '9')]);
    private static readonly CodePointSet WordSet = CodePointSet.FromRanges([('0', '9'), ('a', 'z'), ('A', 'Z'), ('_', '_')]);
    private static readonly CodePointSet SpaceSet = CodePointSet.FromRanges(
        [(9, 13), (' ', ' '), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000), (0xFEFF, 0xFEFF)]);

    private readonly string _pattern;
    private readonly string _path;
    private int _pos;

    private RegexTranslator(string pattern, string path)
    {
        _pattern = pattern;
        _path = path;
    }

    /// <summary>The grammar of the contents (between the quotes) of JSON strings that <paramref name="pattern"/> matches.</summary>
    /// <exception cref="OnnxGptException">The pattern is outside the subset or malformed; the message names the path and position.</exception>
    public static GrammarNode Translate(string pattern, string path)
    {
        var translator = new RegexTranslator(pattern, path);
        var alternatives = new List<GrammarNode>();
        do
        {
            bool anchoredStart = translator.Eat('^');
            var items = translator.Sequence(topLevel: true, out bool anchoredEnd);
            if (!anchoredStart)
            {
                items.Insert(0, AnyText());
            }

            if (!anchoredEnd)
            {
                items.Add(AnyText());
            }

            alternatives.Add(Seq([.. items]));
        }
        while (translator.Eat('|'));

        if (translator._pos < pattern.Length)
        {
            throw translator.Error($"unexpected '{pattern[translator._pos]}'");
        }

        return Choice([.. alternatives]);
    }

    private static GrammarNode AnyText() => Repeat(JsonChar(CodePointSet.All), 0, null);

    private GrammarNode Alternatives()
    {
        var alternatives = new List<GrammarNode> { Seq([.. Sequence(topLevel: false, out _)]) };
        while (Eat('|'))
        {
            alternatives.Add(Seq([.. Sequence(topLevel: false, out _)]));
        }

        return Choice([.. alternatives]);
    }

    private List<GrammarNode> Sequence(bool topLevel, out bool anchoredEnd)
    {
        anchoredEnd = false;
        var items = new List<GrammarNode>();
        while (_pos < _pattern.Length && Peek() is not ('|' or ')'))
        {
            if (Peek() == '$')
            {
                _pos++;
                if (!topLevel || (_pos < _pattern.Length && Peek() != '|'))
                {
                    throw Error("'$' is supported only at the end of the pattern (or of a top-level alternative)");
                }

                anchoredEnd = true;
                break;
            }

            if (Peek() == '^')
            {
                throw Error("'^' is supported only at the start of the pattern (or of a top-level alternative)");
            }

            items.Add(Quantified(Atom()));
        }

        return items;
    }

    private GrammarNode Atom()
    {
        char c = _pattern[_pos++];
        switch (c)
        {
            case '.':
                return JsonChar(CodePointSet.Of('\n').Complement());
            case '(':
            {
                if (Eat('?'))
                {
                    if (Eat(':'))
                    {
                        // a group that does not capture
                    }
                    else if (Peek() == '<' && _pos + 1 < _pattern.Length && _pattern[_pos + 1] is not ('=' or '!'))
                    {
                        int close = _pattern.IndexOf('>', _pos);
                        if (close < 0)
                        {
                            throw Error("a named group '(?<' is not closed with '>'");
                        }

                        _pos = close + 1;
                    }
                    else
                    {
                        throw Error("lookahead and lookbehind ('(?=', '(?!', '(?<=', '(?<!') are not supported");
                    }
                }

                var inner = Alternatives();
                if (!Eat(')'))
                {
                    throw Error("a group is not closed with ')'");
                }

                return inner;
            }

            case '[':
                return JsonChar(Class());
            case '\\':
                return JsonChar(Escape(inClass: false));
            case '*' or '+' or '?' or '{' when c != '{' || IsQuantifier(_pos - 1):
                _pos--;
                throw Error($"the quantifier '{c}' follows nothing");
            case ')':
                _pos--;
                throw Error("')' closes no group");
            default:
                _pos--;
                var rune = System.Text.Rune.GetRuneAt(_pattern, _pos);
                _pos += rune.Utf16SequenceLength;
                return JsonChar(CodePointSet.Of(rune.Value));
        }
    }

    private GrammarNode Quantified(GrammarNode atom)
    {
        while (_pos < _pattern.Length)
        {
            int min, max;
            char c = Peek();
            if (c == '*')
            {
                (min, max) = (0, -1);
                _pos++;
            }
            else if (c == '+')
            {
                (min, max) = (1, -1);
                _pos++;
            }
            else if (c == '?')
            {
                (min, max) = (0, 1);
                _pos++;
            }
            else if (c == '{' && IsQuantifier(_pos))
            {
                _pos++;
                min = Number();
                max = min;
                if (Eat(','))
                {
                    max = Peek() == '}' ? -1 : Number();
                }

                Eat('}');
                if (max >= 0 && max < min)
                {
                    throw Error($"the quantifier {{{min},{max}}} has its maximum below its minimum");
                }
            }
            else
            {
                break;
            }

            Eat('?');   // lazy: the same strings match
            if (Peek() == '+')
            {
                throw Error("possessive quantifiers are not supported");
            }

            atom = Repeat(atom, min, max < 0 ? null : max);
        }

        return atom;
    }

    private bool IsQuantifier(int at)
    {
        int i = at + 1, digits = 0;
        while (i < _pattern.Length && char.IsAsciiDigit(_pattern[i]))
        {
            i++;
            digits++;
        }

        if (digits == 0)
        {
            return false;
        }

        if (i < _pattern.Length && _pattern[i] == ',')
        {
            i++;
            while (i < _pattern.Length && char.IsAsciiDigit(_pattern[i]))
            {
                i++;
            }
        }

        return i < _pattern.Length && _pattern[i] == '}';
    }

    private int Number()
    {
        int start = _pos;
        while (_pos < _pattern.Length && char.IsAsciiDigit(Peek()))
        {
            _pos++;
        }

        if (!int.TryParse(_pattern.AsSpan(start, _pos - start), NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n > GbnfParser.MaxRepeat)
        {
            throw Error($"the repetition count is more than the limit of {GbnfParser.MaxRepeat}");
        }

        return n;
    }

    private CodePointSet Class()
    {
        bool negated = Eat('^');
        var set = CodePointSet.Empty;
        bool first = true;
        while (true)
        {
            if (_pos >= _pattern.Length)
            {
                throw Error("a class '[' is not closed with ']'");
            }

            if (Peek() == ']' && !first)
            {
                _pos++;
                break;
            }

            first = false;
            var low = ClassAtom();
            if (Peek() == '-' && _pos + 1 < _pattern.Length && _pattern[_pos + 1] != ']' && low.Ranges is [var single] && single.Low == single.High)
            {
                _pos++;
                var high = ClassAtom();
                if (high.Ranges is not [var h] || h.Low != h.High || h.Low < single.Low)
                {
                    throw Error("a class range must go from a character up to a character");
                }

                set = set.Union(CodePointSet.FromRanges([(single.Low, h.Low)]));
            }
            else
            {
                set = set.Union(low);
            }
        }

        return negated ? set.Complement() : set;
    }

    private CodePointSet ClassAtom()
    {
        if (Eat('\\'))
        {
            return Escape(inClass: true);
        }

        var rune = System.Text.Rune.GetRuneAt(_pattern, _pos);
        _pos += rune.Utf16SequenceLength;
        return CodePointSet.Of(rune.Value);
    }

    private CodePointSet Escape(bool inClass)
    {
        if (_pos >= _pattern.Length)
        {
            throw Error("the pattern ends with '\\'");
        }

        char c = _pattern[_pos++];
        switch (c)
        {
            case 'd': return DigitSet;
            case 'D': return DigitSet.Complement();
            case 'w': return WordSet;
            case 'W': return WordSet.Complement();
            case 's': return SpaceSet;
            case 'S': return SpaceSet.Complement();
            case 'n': return CodePointSet.Of('\n');
            case 'r': return CodePointSet.Of('\r');
            case 't': return CodePointSet.Of('\t');
            case 'f': return CodePointSet.Of('\f');
            case 'v': return CodePointSet.Of('\v');
            case '0': return CodePointSet.Of(0);
            case 'b' when inClass: return CodePointSet.Of('\b');
            case 'x': return CodePointSet.Of(Hex(2));
            case 'u': return CodePointSet.Of(Hex(4));
            case 'b' or 'B':
                throw Error("word boundaries ('\\b', '\\B') are not supported");
            case 'p' or 'P':
                throw Error("Unicode property classes ('\\p{...}') are not supported");
            case >= '1' and <= '9':
                throw Error("backreferences are not supported");
            case 'k':
                throw Error("named backreferences are not supported");
            default:
                if (char.IsAsciiLetterOrDigit(c))
                {
                    throw Error($"unknown escape '\\{c}'");
                }

                return CodePointSet.Of(c);
        }
    }

    private int Hex(int digits)
    {
        if (_pos + digits > _pattern.Length
            || !int.TryParse(_pattern.AsSpan(_pos, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int value)
            || value is >= 0xD800 and <= 0xDFFF)
        {
            throw Error($"expected {digits} hexadecimal digits of a non-surrogate character");
        }

        _pos += digits;
        return value;
    }

    private char Peek() => _pos < _pattern.Length ? _pattern[_pos] : '\0';

    private bool Eat(char c)
    {
        if (Peek() == c && _pos < _pattern.Length)
        {
            _pos++;
            return true;
        }

        return false;
    }

    private OnnxGptException Error(string what) =>
        new($"JSON schema: {_path}: the pattern \"{_pattern}\" at position {_pos}: {what}; see docs/structured-output.md for the supported subset.");
}

using System.Globalization;
using System.Text;

namespace OnnxGpt.Runtime.Constraints;

/// <summary>Reads the GBNF grammar format (see <see cref="Grammar.Parse"/>) into rules; errors give line and column.</summary>
internal sealed class GbnfParser
{
    /// <summary>Largest count a repetition <c>{m,n}</c> may give.</summary>
    public const int MaxRepeat = 100_000;

    private readonly string _text;
    private readonly string _source;
    private int _pos;

    private GbnfParser(string text, string source)
    {
        _text = text;
        _source = source;
    }

    public static List<KeyValuePair<string, GrammarNode>> Parse(string text, string source)
    {
        var parser = new GbnfParser(text, source);
        var rules = new List<KeyValuePair<string, GrammarNode>>();
        parser.SkipSpace();
        while (parser._pos < text.Length)
        {
            string name = parser.Name() ?? throw parser.Error("expected a rule name (letters, digits, '-' or '_') starting a 'name ::= ...' rule");
            parser.SkipSpace();
            if (!parser.Eat("::="))
            {
                throw parser.Error($"expected '::=' after the rule name '{name}'");
            }

            rules.Add(new(name, parser.Alternatives(nested: false)));
            parser.SkipSpace();
        }

        if (rules.Count == 0)
        {
            throw new OnnxGptException($"{source}: the grammar has no rules; expected at least 'root ::= ...'.");
        }

        return rules;
    }

    private GrammarNode Alternatives(bool nested)
    {
        var alternatives = new List<GrammarNode> { Sequence(nested) };
        while (true)
        {
            SkipSpace();
            if (!Eat("|"))
            {
                break;
            }

            alternatives.Add(Sequence(nested));
        }

        return alternatives.Count == 1 ? alternatives[0] : new ChoiceNode(alternatives);
    }

    private GrammarNode Sequence(bool nested)
    {
        var items = new List<GrammarNode>();
        while (true)
        {
            SkipSpace();
            if (_pos >= _text.Length || Peek() is '|' or ')' || (!nested && StartsRule()))
            {
                break;
            }

            items.Add(Quantified(Primary()));
        }

        return items.Count == 1 ? items[0] : new SequenceNode(items);
    }

    private GrammarNode Primary()
    {
        char c = Peek();
        if (c == '"')
        {
            _pos++;
            var literal = new StringBuilder();
            while (true)
            {
                if (_pos >= _text.Length)
                {
                    throw Error("the literal is not closed; expected '\"'");
                }

                if (Peek() == '"')
                {
                    _pos++;
                    break;
                }

                literal.Append(new Rune(Char(inClass: false)).ToString());
            }

            return new LiteralNode(literal.ToString());
        }

        if (c == '[')
        {
            _pos++;
            bool negated = Eat("^");
            var ranges = new List<(int, int)>();
            while (true)
            {
                if (_pos >= _text.Length)
                {
                    throw Error("the character class is not closed; expected ']'");
                }

                if (Peek() == ']')
                {
                    _pos++;
                    break;
                }

                int low = Char(inClass: true), high = low;
                if (Peek() == '-' && _pos + 1 < _text.Length && _text[_pos + 1] != ']')
                {
                    _pos++;
                    high = Char(inClass: true);
                    if (high < low)
                    {
                        throw Error($"the class range U+{low:X4}-U+{high:X4} is backwards; expected the lower character first");
                    }
                }

                ranges.Add((low, high));
            }

            var set = CodePointSet.FromRanges(ranges);
            return new CharClassNode(negated ? set.Complement() : set);
        }

        if (c == '.')
        {
            _pos++;
            return new CharClassNode(CodePointSet.All);
        }

        if (c == '(')
        {
            _pos++;
            var inner = Alternatives(nested: true);
            SkipSpace();
            if (!Eat(")"))
            {
                throw Error("expected ')' closing the group");
            }

            return inner;
        }

        if (Name() is { } name)
        {
            return new RuleRefNode(name);
        }

        throw Error($"unexpected '{c}'; expected a literal \"...\", a class [...], '.', a rule name or '('");
    }

    private GrammarNode Quantified(GrammarNode item)
    {
        while (_pos < _text.Length)
        {
            char c = Peek();
            if (c is '*' or '+' or '?')
            {
                _pos++;
                item = new RepeatNode(item, c == '+' ? 1 : 0, c == '?' ? 1 : null);
            }
            else if (c == '{')
            {
                _pos++;
                int min = Count(), max = min;
                int? upper = min;
                if (Eat(","))
                {
                    SkipInlineSpace();
                    upper = char.IsAsciiDigit(Peek()) ? Count() : null;
                    max = upper ?? min;
                }

                SkipInlineSpace();
                if (!Eat("}"))
                {
                    throw Error("expected '}' closing the repetition {m,n}");
                }

                if (upper is not null && max < min)
                {
                    throw Error($"the repetition {{{min},{max}}} has its maximum below its minimum");
                }

                item = new RepeatNode(item, min, upper);
            }
            else
            {
                break;
            }
        }

        return item;
    }

    private int Count()
    {
        SkipInlineSpace();
        int start = _pos;
        while (_pos < _text.Length && char.IsAsciiDigit(Peek()))
        {
            _pos++;
        }

        if (start == _pos)
        {
            throw Error("expected a number in the repetition {m,n}");
        }

        if (!int.TryParse(_text.AsSpan(start, _pos - start), NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n > MaxRepeat)
        {
            throw Error($"the repetition count {_text[start.._pos]} is more than the limit of {MaxRepeat}");
        }

        return n;
    }

    /// <summary>One character of a literal or class, escapes decoded, as a code point.</summary>
    private int Char(bool inClass)
    {
        if (Peek() != '\\')
        {
            if (Rune.DecodeFromUtf16(_text.AsSpan(_pos), out var rune, out int used) != System.Buffers.OperationStatus.Done)
            {
                throw Error("an unpaired surrogate; expected valid text");
            }

            if (!inClass && rune.Value is '\n' or '\r')
            {
                throw Error("a line break inside a literal; write it as \\n");
            }

            _pos += used;
            return rune.Value;
        }

        _pos++;
        if (_pos >= _text.Length)
        {
            throw Error("an escape '\\' at the end of the grammar");
        }

        char c = _text[_pos++];
        return c switch
        {
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            '0' => 0,
            '\\' or '"' or '[' or ']' or '-' or '^' or '/' or '.' => c,
            'x' => Hex(2),
            'u' => Hex(4),
            'U' => Hex(8),
            _ => throw Error($"unknown escape '\\{c}'; expected one of \\n \\r \\t \\\\ \\\" \\[ \\] \\- \\^ \\xHH \\uHHHH \\UHHHHHHHH"),
        };
    }

    private int Hex(int digits)
    {
        if (_pos + digits > _text.Length
            || !int.TryParse(_text.AsSpan(_pos, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int value))
        {
            throw Error($"expected {digits} hexadecimal digits after the escape");
        }

        if (value > CodePointSet.MaxCodePoint || value is >= 0xD800 and <= 0xDFFF)
        {
            throw Error($"U+{value:X} is not a Unicode scalar value");
        }

        _pos += digits;
        return value;
    }

    private string? Name()
    {
        int start = _pos;
        while (_pos < _text.Length && (char.IsAsciiLetterOrDigit(_text[_pos]) || _text[_pos] is '-' or '_'))
        {
            _pos++;
        }

        return _pos > start ? _text[start.._pos] : null;
    }

    /// <summary>Whether a new rule (<c>name ::=</c>) starts here.</summary>
    private bool StartsRule()
    {
        int save = _pos;
        bool starts = Name() is not null && SkipInlineSpaceAndCheck("::=");
        _pos = save;
        return starts;
    }

    private bool SkipInlineSpaceAndCheck(string token)
    {
        SkipInlineSpace();
        return string.CompareOrdinal(_text, _pos, token, 0, token.Length) == 0;
    }

    private void SkipSpace()
    {
        while (_pos < _text.Length)
        {
            if (char.IsWhiteSpace(_text[_pos]))
            {
                _pos++;
            }
            else if (_text[_pos] == '#')
            {
                while (_pos < _text.Length && _text[_pos] != '\n')
                {
                    _pos++;
                }
            }
            else
            {
                break;
            }
        }
    }

    private void SkipInlineSpace()
    {
        while (_pos < _text.Length && _text[_pos] is ' ' or '\t')
        {
            _pos++;
        }
    }

    private char Peek() => _pos < _text.Length ? _text[_pos] : '\0';

    private bool Eat(string token)
    {
        if (string.CompareOrdinal(_text, _pos, token, 0, token.Length) == 0)
        {
            _pos += token.Length;
            return true;
        }

        return false;
    }

    private OnnxGptException Error(string what)
    {
        int line = 1, column = 1;
        for (int i = 0; i < _pos && i < _text.Length; i++)
        {
            if (_text[i] == '\n')
            {
                line++;
                column = 1;
            }
            else
            {
                column++;
            }
        }

        return new OnnxGptException($"{_source}:{line}:{column}: {what}.");
    }
}

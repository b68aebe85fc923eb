using System.Globalization;
using System.Text;

namespace OnnxGpt.Runtime.Constraints;

/// <summary>
/// One expression of a <see cref="Grammar"/> rule, over Unicode characters. The grammar text format and the JSON
/// Schema compiler both build these; <see cref="ByteAutomaton"/> lowers them to bytes.
/// </summary>
internal abstract record GrammarNode
{
    /// <summary>This node in the grammar format (GBNF), parenthesised where it would not bind as one item.</summary>
    public abstract void Write(StringBuilder text, bool asItem);

    public override string ToString()
    {
        var text = new StringBuilder();
        Write(text, asItem: false);
        return text.ToString();
    }

    /// <summary>Writes a character as the grammar format escapes it inside a literal or a class.</summary>
    internal static void WriteChar(StringBuilder text, int cp, bool inClass)
    {
        switch (cp)
        {
            case '\n': text.Append("\\n"); return;
            case '\r': text.Append("\\r"); return;
            case '\t': text.Append("\\t"); return;
            case '\\': text.Append("\\\\"); return;
            case '"' when !inClass: text.Append("\\\""); return;
            case ']' or '[' or '-' or '^' when inClass: text.Append('\\').Append((char)cp); return;
        }

        if (cp < 0x20 || cp == 0x7F || cp is >= 0x80 and < 0xA0)
        {
            text.Append("\\x").Append(cp.ToString("X2", CultureInfo.InvariantCulture));
        }
        else if (cp > 0xFFFF && !Rune.IsValid(cp))
        {
            text.Append("\\U").Append(cp.ToString("X8", CultureInfo.InvariantCulture));
        }
        else
        {
            text.Append(new Rune(cp).ToString());
        }
    }
}

/// <summary>A fixed string.</summary>
internal sealed record LiteralNode(string Text) : GrammarNode
{
    public override void Write(StringBuilder text, bool asItem)
    {
        text.Append('"');
        foreach (var rune in Text.EnumerateRunes())
        {
            WriteChar(text, rune.Value, inClass: false);
        }

        text.Append('"');
    }
}

/// <summary>One character of a set.</summary>
internal sealed record CharClassNode(CodePointSet Set) : GrammarNode
{
    public override void Write(StringBuilder text, bool asItem)
    {
        if (Set.Equals(CodePointSet.All))
        {
            text.Append('.');
            return;
        }

        // Write the shorter of the set and its complement.
        var complement = Set.Complement();
        bool negate = complement.Ranges.Count < Set.Ranges.Count;
        text.Append(negate ? "[^" : "[");
        foreach (var (low, high) in (negate ? complement : Set).Ranges)
        {
            WriteChar(text, low, inClass: true);
            if (high > low)
            {
                if (high > low + 1)
                {
                    text.Append('-');
                }

                WriteChar(text, high, inClass: true);
            }
        }

        text.Append(']');
    }
}

/// <summary>A reference to a rule by name.</summary>
internal sealed record RuleRefNode(string Name) : GrammarNode
{
    public override void Write(StringBuilder text, bool asItem) => text.Append(Name);
}

/// <summary>Items one after another; no items is the empty string.</summary>
internal sealed record SequenceNode(IReadOnlyList<GrammarNode> Items) : GrammarNode
{
    public override void Write(StringBuilder text, bool asItem)
    {
        if (Items.Count == 0)
        {
            text.Append("\"\"");
            return;
        }

        bool group = asItem && Items.Count > 1;
        if (group)
        {
            text.Append("( ");
        }

        for (int i = 0; i < Items.Count; i++)
        {
            if (i > 0)
            {
                text.Append(' ');
            }

            Items[i].Write(text, asItem: true);
        }

        if (group)
        {
            text.Append(" )");
        }
    }
}

/// <summary>Any one of several alternatives.</summary>
internal sealed record ChoiceNode(IReadOnlyList<GrammarNode> Alternatives) : GrammarNode
{
    public override void Write(StringBuilder text, bool asItem)
    {
        if (asItem)
        {
            text.Append("( ");
        }

        for (int i = 0; i < Alternatives.Count; i++)
        {
            if (i > 0)
            {
                text.Append(" | ");
            }

            Alternatives[i].Write(text, asItem: false);
        }

        if (asItem)
        {
            text.Append(" )");
        }
    }
}

/// <summary>An item repeated <paramref name="Min"/> to <paramref name="Max"/> times (null: no upper limit).</summary>
internal sealed record RepeatNode(GrammarNode Item, int Min, int? Max) : GrammarNode
{
    public override void Write(StringBuilder text, bool asItem)
    {
        Item.Write(text, asItem: true);
        text.Append((Min, Max) switch
        {
            (0, null) => "*",
            (1, null) => "+",
            (0, 1) => "?",
            (var m, null) => $"{{{m},}}",
            (var m, var n) when m == n => $"{{{m}}}",
            (var m, var n) => $"{{{m},{n}}}",
        });
    }
}

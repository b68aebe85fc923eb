using System.Text;

namespace OnnxGpt.Runtime.Constraints;

/// <summary>
/// Turns a <see cref="Grammar"/> over characters into flat rules over bytes, for one vocabulary: characters
/// become their UTF-8 bytes, a character class becomes byte-range sequences (<see cref="CodePointSet.ToUtf8Sequences"/>),
/// groups and repetitions become rules of their own (<c>x*</c> is <c>s ::= x s | ""</c>, <c>x{0,n}</c> a chain of n
/// optional rules), and everything is restricted to the characters the vocabulary can write. Alternatives that can
/// then never finish are removed, so every state the automaton reaches can still be completed.
/// <para>
/// The flat form: elements in one array, each an end of alternative, a byte set, or a reference to a rule; an
/// alternative is a run of elements ending with an end element; a rule is a list of alternative starts.
/// </para>
/// </summary>
internal sealed class GrammarLowering
{
    public const int End = 0, Bytes = 1, Ref = 2;

    private readonly Grammar _grammar;
    private readonly CodePointSet _producible;
    private readonly List<int> _kind = [];
    private readonly List<int> _arg = [];
    private readonly List<ulong[]> _sets = [];
    private readonly Dictionary<(ulong, ulong, ulong, ulong), int> _setIndex = [];
    private readonly List<List<int>> _ruleAlternatives = [];
    private readonly List<string> _ruleNames = [];
    private readonly Dictionary<string, int> _userRules = new(StringComparer.Ordinal);
    private readonly Dictionary<CodePointSet, int> _classRules = [];
    private readonly Dictionary<string, int> _byteTreeRules = new(StringComparer.Ordinal);
    private readonly SortedSet<int> _missing = [];

    private GrammarLowering(Grammar grammar, CodePointSet producible)
    {
        _grammar = grammar;
        _producible = producible;
    }

    public int[] Kind { get; private set; } = [];

    public int[] Arg { get; private set; } = [];

    /// <summary>Byte sets, four 64-bit words each.</summary>
    public ulong[][] Sets { get; private set; } = [];

    /// <summary>Per rule, the element index where each of its alternatives starts.</summary>
    public int[][] RuleAlternatives { get; private set; } = [];

    public string[] RuleNames { get; private set; } = [];

    public int Root { get; private set; }

    /// <exception cref="OnnxGptException">The vocabulary cannot write any sentence of the grammar; the message names characters it lacks.</exception>
    public static GrammarLowering Lower(Grammar grammar, CodePointSet producible, string vocabularyDescription)
    {
        var lowering = new GrammarLowering(grammar, producible);
        lowering.Root = lowering.UserRule(Grammar.RootRule);
        lowering.Kind = [.. lowering._kind];
        lowering.Arg = [.. lowering._arg];
        lowering.Sets = [.. lowering._sets];
        lowering.RuleNames = [.. lowering._ruleNames];
        lowering.RuleAlternatives = lowering.RemoveUnproductive(vocabularyDescription);
        return lowering;
    }

    public bool SetContains(int set, byte b) => (Sets[set][b >> 6] & (1UL << (b & 63))) != 0;

    private int UserRule(string name)
    {
        if (_userRules.TryGetValue(name, out int index))
        {
            return index;
        }

        index = NewRule(name);
        _userRules[name] = index;
        var node = _grammar.Rules[name];
        foreach (var alternative in node is ChoiceNode c ? c.Alternatives : [node])
        {
            AddAlternative(index, alternative);
        }

        return index;
    }

    private int NewRule(string name)
    {
        _ruleAlternatives.Add([]);
        _ruleNames.Add(name);
        return _ruleAlternatives.Count - 1;
    }

    private void AddAlternative(int rule, GrammarNode node)
    {
        var items = new List<(int Kind, int Arg)>();
        Emit(node, items, _ruleNames[rule]);
        AddAlternative(rule, items);
    }

    private void AddAlternative(int rule, List<(int Kind, int Arg)> items)
    {
        _ruleAlternatives[rule].Add(_kind.Count);
        foreach (var (kind, arg) in items)
        {
            _kind.Add(kind);
            _arg.Add(arg);
        }

        _kind.Add(End);
        _arg.Add(0);
    }

    private void Emit(GrammarNode node, List<(int Kind, int Arg)> items, string owner)
    {
        switch (node)
        {
            case LiteralNode literal:
                Span<byte> utf8 = stackalloc byte[4];
                foreach (var rune in literal.Text.EnumerateRunes())
                {
                    if (!_producible.Contains(rune.Value))
                    {
                        _missing.Add(rune.Value);
                        items.Add((Bytes, SetOf([])));   // never matches: the alternative is removed
                        continue;
                    }

                    int n = rune.EncodeToUtf8(utf8);
                    for (int i = 0; i < n; i++)
                    {
                        items.Add((Bytes, SetOf([(utf8[i], utf8[i])])));
                    }
                }

                break;
            case CharClassNode charClass:
                EmitClass(charClass.Set, items);
                break;
            case RuleRefNode reference:
                items.Add((Ref, UserRule(reference.Name)));
                break;
            case SequenceNode sequence:
                foreach (var item in sequence.Items)
                {
                    Emit(item, items, owner);
                }

                break;
            case ChoiceNode choice:
            {
                int rule = NewRule(owner + "-choice");
                foreach (var alternative in choice.Alternatives)
                {
                    AddAlternative(rule, alternative);
                }

                items.Add((Ref, rule));
                break;
            }

            case RepeatNode repeat:
                EmitRepeat(repeat, items, owner);
                break;
            default:
                throw new InvalidOperationException($"unknown grammar node {node.GetType().Name}");
        }
    }

    private void EmitRepeat(RepeatNode repeat, List<(int Kind, int Arg)> items, string owner)
    {
        // The item once, as elements: inline when it is one element, else as a rule of its own.
        var once = new List<(int Kind, int Arg)>();
        Emit(repeat.Item, once, owner);
        if (once.Count != 1)
        {
            int itemRule = NewRule(owner + "-item");
            AddAlternative(itemRule, once);
            once = [(Ref, itemRule)];
        }

        for (int i = 0; i < repeat.Min; i++)
        {
            items.Add(once[0]);
        }

        if (repeat.Max is null)
        {
            int star = NewRule(owner + "-star");
            AddAlternative(star, [once[0], (Ref, star)]);
            AddAlternative(star, []);
            items.Add((Ref, star));
        }
        else if (repeat.Max > repeat.Min)
        {
            int next = -1;
            for (int k = 1; k <= repeat.Max - repeat.Min; k++)
            {
                int optional = NewRule($"{owner}-opt{k}");
                AddAlternative(optional, next < 0 ? [once[0]] : [once[0], (Ref, next)]);
                AddAlternative(optional, []);
                next = optional;
            }

            items.Add((Ref, next));
        }
    }

    private void EmitClass(CodePointSet set, List<(int Kind, int Arg)> items)
    {
        var usable = set.Intersect(_producible);
        if (usable.IsEmpty)
        {
            foreach (var (low, _) in set.Ranges.Take(1))
            {
                _missing.Add(low);
            }

            items.Add((Bytes, SetOf([])));
            return;
        }

        var sequences = usable.ToUtf8Sequences();
        var singles = sequences.Where(s => s.Length == 1).Select(s => s[0]).ToList();
        if (singles.Count == sequences.Count)
        {
            items.Add((Bytes, SetOf(singles)));
            return;
        }

        if (!_classRules.TryGetValue(usable, out int rule))
        {
            rule = ByteTreeRule(sequences, "class" + _classRules.Count);
            _classRules[usable] = rule;
        }

        items.Add((Ref, rule));
    }

    /// <summary>
    /// A rule matching exactly the byte strings of <paramref name="sequences"/> (byte-range sequences), as a tree:
    /// first bytes with the same set of continuations share one alternative (first-byte set, then a rule for the
    /// rest), so a class matches with a handful of stacks however fragmented it is.
    /// </summary>
    private int ByteTreeRule(List<(byte Low, byte High)[]> sequences, string name)
    {
        string key = TailKey(sequences);
        if (_byteTreeRules.TryGetValue(key, out int known))
        {
            return known;
        }

        int rule = NewRule(name);
        _byteTreeRules[key] = rule;
        var groups = new Dictionary<string, (List<(byte, byte)> Firsts, List<(byte Low, byte High)[]> Tails)>(StringComparer.Ordinal);
        var order = new List<string>();
        for (int b = 0; b < 256; b++)
        {
            var tails = sequences.Where(q => q[0].Low <= b && b <= q[0].High).Select(q => q[1..]).ToList();
            if (tails.Count == 0)
            {
                continue;
            }

            string tailKey = TailKey(tails);
            if (!groups.TryGetValue(tailKey, out var group))
            {
                group = ([], tails);
                groups[tailKey] = group;
                order.Add(tailKey);
            }

            group.Firsts.Add(((byte)b, (byte)b));
        }

        foreach (var tailKey in order)
        {
            var (firsts, tails) = groups[tailKey];
            var nonEmpty = tails.Where(t => t.Length > 0).ToList();
            if (nonEmpty.Count < tails.Count)
            {
                AddAlternative(rule, [(Bytes, SetOf(firsts))]);
            }

            if (nonEmpty.Count > 0)
            {
                AddAlternative(rule, [(Bytes, SetOf(firsts)), (Ref, ByteTreeRule(nonEmpty, name + "-tail"))]);
            }
        }

        return rule;
    }

    private static string TailKey(List<(byte Low, byte High)[]> sequences) =>
        string.Join("|", sequences.Select(q => string.Concat(q.Select(r => $"{r.Low:X2}{r.High:X2}"))).Distinct().Order(StringComparer.Ordinal));

    private int SetOf(IEnumerable<(byte Low, byte High)> ranges)
    {
        var words = new ulong[4];
        foreach (var (low, high) in ranges)
        {
            for (int b = low; b <= high; b++)
            {
                words[b >> 6] |= 1UL << (b & 63);
            }
        }

        var key = (words[0], words[1], words[2], words[3]);
        if (!_setIndex.TryGetValue(key, out int index))
        {
            index = _sets.Count;
            _sets.Add(words);
            _setIndex[key] = index;
        }

        return index;
    }

    /// <summary>Drops the alternatives that can never finish (an empty byte set, or a rule that cannot); fails if the root is one.</summary>
    private int[][] RemoveUnproductive(string vocabularyDescription)
    {
        int rules = _ruleAlternatives.Count;
        var productive = new bool[rules];
        bool changed = true;
        while (changed)
        {
            changed = false;
            for (int r = 0; r < rules; r++)
            {
                if (!productive[r] && _ruleAlternatives[r].Any(a => AlternativeProductive(a, productive)))
                {
                    productive[r] = true;
                    changed = true;
                }
            }
        }

        if (!productive[Root])
        {
            var missing = string.Join(", ", _missing.Take(8).Select(Describe));
            throw new OnnxGptException(
                $"{_grammar.Source}: no text this grammar accepts can be written with the model's vocabulary ({vocabularyDescription})" +
                (missing.Length > 0 ? $"; it lacks characters the grammar needs, such as {missing}." : "."));
        }

        var result = new int[rules][];
        for (int r = 0; r < rules; r++)
        {
            result[r] = [.. _ruleAlternatives[r].Where(a => AlternativeProductive(a, productive))];
        }

        return result;
    }

    private bool AlternativeProductive(int start, bool[] productive)
    {
        for (int e = start; Kind[e] != End; e++)
        {
            if (Kind[e] == Bytes ? Sets[Arg[e]].All(w => w == 0) : !productive[Arg[e]])
            {
                return false;
            }
        }

        return true;
    }

    private static string Describe(int cp)
    {
        var text = new StringBuilder();
        if (cp >= 0x20 && cp != 0x7F)
        {
            text.Append('\'').Append(new Rune(cp).ToString()).Append("' ");
        }

        return text.Append($"(U+{cp:X4})").ToString();
    }
}

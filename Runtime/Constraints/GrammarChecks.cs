namespace OnnxGpt.Runtime.Constraints;

/// <summary>
/// What a grammar must satisfy before it can run: a <c>root</c> rule, every referenced rule defined, no left
/// recursion (a rule reaching itself before any character is read, which a top-down matcher cannot run), and a
/// size within <see cref="Grammar.MaxSize"/> once repetitions are expanded.
/// </summary>
internal static class GrammarChecks
{
    public static void Check(Grammar grammar)
    {
        var rules = grammar.Rules;
        if (!rules.ContainsKey(Grammar.RootRule))
        {
            throw new OnnxGptException($"{grammar.Source}: there is no rule '{Grammar.RootRule}'; expected one, where generation starts.");
        }

        foreach (var (name, node) in rules)
        {
            foreach (var reference in References(node))
            {
                if (!rules.ContainsKey(reference))
                {
                    throw new OnnxGptException($"{grammar.Source}: rule '{name}' refers to rule '{reference}', which is not defined.");
                }
            }
        }

        long size = 0;
        foreach (var node in rules.Values)
        {
            size += Size(node);
            if (size > Grammar.MaxSize)
            {
                throw new OnnxGptException(
                    $"{grammar.Source}: the grammar expands to more than {Grammar.MaxSize} elements (its repetitions counted out); use smaller repetition counts.");
            }
        }

        // Nullable rules, to a fixed point.
        var nullable = new HashSet<string>(StringComparer.Ordinal);
        bool changed = true;
        while (changed)
        {
            changed = false;
            foreach (var (name, node) in rules)
            {
                if (!nullable.Contains(name) && IsNullable(node, nullable))
                {
                    nullable.Add(name);
                    changed = true;
                }
            }
        }

        // Left edges: the rules a rule may call before it reads a character. A cycle among them is left recursion.
        var edges = rules.ToDictionary(r => r.Key, r => LeftEdges(r.Value, nullable).Distinct().ToList(), StringComparer.Ordinal);
        var state = new Dictionary<string, int>(StringComparer.Ordinal);   // 1 on the path, 2 done
        var path = new List<string>();
        foreach (var name in grammar.RuleNames)
        {
            Visit(name);
        }

        void Visit(string name)
        {
            if (state.TryGetValue(name, out int s))
            {
                if (s == 1)
                {
                    var cycle = path.Skip(path.IndexOf(name)).Append(name);
                    throw new OnnxGptException(
                        $"{grammar.Source}: rule '{name}' is left-recursive ({string.Join(" -> ", cycle)} before any character is read); " +
                        "rewrite it with repetition, e.g. 'list ::= item (\",\" item)*' instead of 'list ::= list \",\" item | item'.");
                }

                return;
            }

            state[name] = 1;
            path.Add(name);
            foreach (var next in edges[name])
            {
                Visit(next);
            }

            path.RemoveAt(path.Count - 1);
            state[name] = 2;
        }
    }

    public static bool IsNullable(GrammarNode node, IReadOnlySet<string> nullableRules) => node switch
    {
        LiteralNode l => l.Text.Length == 0,
        CharClassNode => false,
        RuleRefNode r => nullableRules.Contains(r.Name),
        SequenceNode s => s.Items.All(i => IsNullable(i, nullableRules)),
        ChoiceNode c => c.Alternatives.Any(a => IsNullable(a, nullableRules)),
        RepeatNode r => r.Min == 0 || IsNullable(r.Item, nullableRules),
        _ => throw new InvalidOperationException(node.GetType().Name),
    };

    private static IEnumerable<string> LeftEdges(GrammarNode node, IReadOnlySet<string> nullable)
    {
        switch (node)
        {
            case RuleRefNode r:
                yield return r.Name;
                break;
            case SequenceNode s:
                foreach (var item in s.Items)
                {
                    foreach (var e in LeftEdges(item, nullable))
                    {
                        yield return e;
                    }

                    if (!IsNullable(item, nullable))
                    {
                        break;
                    }
                }

                break;
            case ChoiceNode c:
                foreach (var e in c.Alternatives.SelectMany(a => LeftEdges(a, nullable)))
                {
                    yield return e;
                }

                break;
            case RepeatNode r:
                foreach (var e in LeftEdges(r.Item, nullable))
                {
                    yield return e;
                }

                break;
        }
    }

    private static IEnumerable<string> References(GrammarNode node) => node switch
    {
        RuleRefNode r => [r.Name],
        SequenceNode s => s.Items.SelectMany(References),
        ChoiceNode c => c.Alternatives.SelectMany(References),
        RepeatNode r => References(r.Item),
        _ => [],
    };

    private static long Size(GrammarNode node) => node switch
    {
        LiteralNode l => Math.Max(1, l.Text.Length),
        SequenceNode s => 1 + s.Items.Sum(Size),
        ChoiceNode c => 1 + c.Alternatives.Sum(Size),
        RepeatNode r => 1 + Math.Min(Size(r.Item) * ((long)(r.Max ?? r.Min) + 1), (long)Grammar.MaxSize + 1),
        _ => 1,
    };
}

using OnnxGpt.Runtime.Constraints;

namespace OnnxGpt.Tests.Runtime.Constraints;

/// <summary>
/// A brute-force oracle for the token mask: an Earley recognizer over the grammar's byte-level rules (the
/// lowering's output), written independently of the automaton (no stacks, no interning, no trie, no caches). A byte
/// string is a viable prefix when its last Earley set is not empty (every remaining rule can finish), and complete
/// when that set holds a finished root item from position 0.
/// </summary>
internal sealed class EarleyOracle
{
    private readonly GrammarLowering _g;
    private readonly List<HashSet<(int Rule, int Start, int Dot, int Origin)>> _sets = [];
    private readonly bool[] _nullable;

    // Per set: the items waiting on each rule (their dot before a reference to it), for completion.
    private readonly List<Dictionary<int, List<(int Rule, int Start, int Dot, int Origin)>>> _waiting = [];

    public EarleyOracle(GrammarLowering grammar)
    {
        _g = grammar;
        _nullable = new bool[grammar.RuleAlternatives.Length];
        bool changed = true;
        while (changed)
        {
            changed = false;
            for (int r = 0; r < _nullable.Length; r++)
            {
                if (!_nullable[r] && grammar.RuleAlternatives[r].Any(a => AllNullable(a)))
                {
                    _nullable[r] = changed = true;
                }
            }
        }

        var first = new HashSet<(int, int, int, int)>();
        foreach (int a in grammar.RuleAlternatives[grammar.Root])
        {
            first.Add((grammar.Root, a, a, 0));
        }

        _sets.Add(first);
        Close(0);
    }

    public int Length => _sets.Count - 1;

    public bool IsViable => _sets[^1].Count > 0;

    public bool IsComplete => _sets[^1].Any(i => i.Rule == _g.Root && i.Origin == 0 && _g.Kind[i.Dot] == GrammarLowering.End);

    /// <summary>Reads one more byte; the set may come out empty (not viable).</summary>
    public void Push(byte b)
    {
        var next = new HashSet<(int, int, int, int)>();
        foreach (var item in _sets[^1])
        {
            if (_g.Kind[item.Dot] == GrammarLowering.Bytes && _g.SetContains(_g.Arg[item.Dot], b))
            {
                next.Add((item.Rule, item.Start, item.Dot + 1, item.Origin));
            }
        }

        _sets.Add(next);
        Close(_sets.Count - 1);
    }

    /// <summary>Forgets the last <paramref name="count"/> bytes.</summary>
    public void Pop(int count)
    {
        _sets.RemoveRange(_sets.Count - count, count);
        _waiting.RemoveRange(_waiting.Count - count, count);
    }

    /// <summary>Whether the bytes so far followed by <paramref name="bytes"/> are a viable prefix (the oracle is left as it was).</summary>
    public bool Allows(ReadOnlySpan<byte> bytes)
    {
        int pushed = 0;
        bool viable = true;
        foreach (byte b in bytes)
        {
            Push(b);
            pushed++;
            if (!IsViable)
            {
                viable = false;
                break;
            }
        }

        Pop(pushed);
        return viable;
    }

    private bool AllNullable(int start)
    {
        for (int e = start; _g.Kind[e] != GrammarLowering.End; e++)
        {
            if (_g.Kind[e] != GrammarLowering.Ref || !_nullable[_g.Arg[e]])
            {
                return false;
            }
        }

        return true;
    }

    private void Close(int at)
    {
        var set = _sets[at];
        var waiting = new Dictionary<int, List<(int Rule, int Start, int Dot, int Origin)>>();
        _waiting.Add(waiting);
        foreach (var item in set.Where(i => _g.Kind[i.Dot] == GrammarLowering.Ref))
        {
            if (!waiting.TryGetValue(_g.Arg[item.Dot], out var list))
            {
                waiting[_g.Arg[item.Dot]] = list = [];
            }

            list.Add(item);
        }

        var work = new Stack<(int Rule, int Start, int Dot, int Origin)>(set);
        while (work.Count > 0)
        {
            var item = work.Pop();
            int kind = _g.Kind[item.Dot];
            if (kind == GrammarLowering.Ref)
            {
                int rule = _g.Arg[item.Dot];
                foreach (int a in _g.RuleAlternatives[rule])
                {
                    Add((rule, a, a, at));
                }

                if (_nullable[rule])
                {
                    Add((item.Rule, item.Start, item.Dot + 1, item.Origin));   // Aycock & Horspool: skip a nullable rule
                }
            }
            else if (kind == GrammarLowering.End && _waiting[item.Origin].TryGetValue(item.Rule, out var parents))
            {
                foreach (var parent in parents.ToArray())
                {
                    Add((parent.Rule, parent.Start, parent.Dot + 1, parent.Origin));
                }
            }
        }

        void Add((int Rule, int Start, int Dot, int Origin) item)
        {
            if (set.Add(item))
            {
                work.Push(item);
                if (_g.Kind[item.Dot] == GrammarLowering.Ref)
                {
                    int rule = _g.Arg[item.Dot];
                    if (!waiting.TryGetValue(rule, out var list))
                    {
                        waiting[rule] = list = [];
                    }

                    list.Add(item);
                }
            }
        }
    }
}

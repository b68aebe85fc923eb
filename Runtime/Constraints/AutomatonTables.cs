using System.Runtime.CompilerServices;

namespace OnnxGpt.Runtime.Constraints;

/// <summary>
/// The interned frames and states of a <see cref="ByteAutomaton"/>, and the computation of transitions and token
/// masks. A frame is one stack entry (an element to match next, and the frame below it), interned so that equal
/// stacks share one id; a state is a set of top frames. Everything is computed on first use under one lock and
/// published whole, so the per-token path (a state's <see cref="AutomatonState.Next"/> and
/// <see cref="AutomatonState.Mask"/>) reads without locking or allocating.
/// </summary>
internal sealed class AutomatonTables
{
    /// <summary>Most top frames one state may hold: beyond, the grammar is too ambiguous to run.</summary>
    public const int MaxFramesPerState = 4096;

    private readonly ByteAutomaton _automaton;
    private readonly object _lock = new();
    private readonly List<int> _frameElement = [];
    private readonly List<int> _frameParent = [];
    private readonly Dictionary<long, int> _frameIndex = [];
    private readonly Dictionary<StateKey, AutomatonState> _states = [];

    // Scratch for closures, reused under the lock.
    private readonly HashSet<long> _visited = [];
    private readonly Stack<(int Element, int Parent)> _work = new();
    private readonly SortedSet<int> _tops = [];

    public AutomatonTables(ByteAutomaton automaton)
    {
        _automaton = automaton;
        Dead = new AutomatonState(this, [], accepting: false, id: -1);
        lock (_lock)
        {
            _tops.Clear();
            bool accepting = false;
            foreach (int alternative in automaton.Rules[automaton.Root])
            {
                Closure(alternative, -1, ref accepting);
            }

            Start = Intern(accepting);
        }
    }

    /// <summary>The state before any byte.</summary>
    public AutomatonState Start { get; }

    /// <summary>The state with no stacks and no acceptance: every byte leads here once the grammar is broken.</summary>
    public AutomatonState Dead { get; }

    public int StateCount => _states.Count;

    public int FrameCount => _frameElement.Count;

    /// <summary>The state after <paramref name="b"/> from <paramref name="state"/> (one array read once computed).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public AutomatonState Step(AutomatonState state, byte b)
    {
        var next = state.Next;
        if (next.Length == 0)
        {
            return Dead;
        }

        return Volatile.Read(ref next[b]) ?? ComputeStep(state, b);
    }

    /// <summary>The tokens allowed from <paramref name="state"/>, computed by one scan of the token trie on first use.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public TokenMask MaskOf(AutomatonState state) => Volatile.Read(ref state.Mask) ?? ComputeMask(state);

    private AutomatonState ComputeStep(AutomatonState state, byte b)
    {
        lock (_lock)
        {
            return StepLocked(state, b);
        }
    }

    private AutomatonState StepLocked(AutomatonState state, byte b)
    {
        if (state.Next.Length == 0)
        {
            return Dead;
        }

        if (state.Next[b] is not { } known)
        {
            ComputeTransitions(state);
            known = state.Next[b]!;
        }

        return known;
    }

    /// <summary>
    /// Fills all 256 transitions of <paramref name="state"/> at once. Bytes that every top frame treats alike (each
    /// frame's byte set holds all of them or none) lead to the same state, so the closure runs once per such class of
    /// bytes (a handful in practice: inside a JSON string, the quote, the backslash, the controls, ASCII and the
    /// UTF-8 lead bytes), not once per byte.
    /// </summary>
    private void ComputeTransitions(AutomatonState state)
    {
        var lowering = _automaton.Lowering;
        var frames = state.Frames;
        Span<ulong> signature = stackalloc ulong[256];
        for (int b = 0; b < 256; b++)
        {
            ulong hash = 0xCBF29CE484222325UL;
            for (int i = 0; i < frames.Length; i++)
            {
                if (lowering.SetContains(lowering.Arg[_frameElement[frames[i]]], (byte)b))
                {
                    hash = (hash ^ (ulong)(i + 1)) * 0x100000001B3UL;
                }
            }

            signature[b] = hash;
        }

        Span<bool> done = stackalloc bool[256];
        for (int b = 0; b < 256; b++)
        {
            if (done[b])
            {
                continue;
            }

            _tops.Clear();
            bool accepting = false;
            foreach (int frame in frames)
            {
                int element = _frameElement[frame];
                if (lowering.SetContains(lowering.Arg[element], (byte)b))
                {
                    Closure(element + 1, _frameParent[frame], ref accepting);
                }
            }

            var result = _tops.Count == 0 && !accepting ? Dead : Intern(accepting);
            for (int other = b; other < 256; other++)
            {
                if (!done[other] && signature[other] == signature[b] && SameFrames(frames, (byte)b, (byte)other))
                {
                    done[other] = true;
                    Volatile.Write(ref state.Next[other], result);
                }
            }
        }
    }

    /// <summary>Whether every frame's byte set holds both bytes or neither (the signature hash can collide).</summary>
    private bool SameFrames(int[] frames, byte a, byte b)
    {
        if (a == b)
        {
            return true;
        }

        var lowering = _automaton.Lowering;
        foreach (int frame in frames)
        {
            int set = lowering.Arg[_frameElement[frame]];
            if (lowering.SetContains(set, a) != lowering.SetContains(set, b))
            {
                return false;
            }
        }

        return true;
    }

    private TokenMask ComputeMask(AutomatonState state)
    {
        lock (_lock)
        {
            if (state.Mask is { } known)
            {
                return known;
            }

            var vocabulary = _automaton.Vocabulary;
            var bits = new ulong[(vocabulary.Size + 63) / 64];
            int count = 0;
            var at = new AutomatonState[vocabulary.MaxDepth + 1];
            at[0] = state;
            var nodeByte = vocabulary.NodeByte;
            var depth = vocabulary.NodeDepth;
            var subtreeEnd = vocabulary.SubtreeEnd;
            var tokenStart = vocabulary.NodeTokenStart;
            var tokens = vocabulary.NodeTokens;
            for (int node = 0; node < nodeByte.Length;)
            {
                int d = depth[node];
                var parent = at[d - 1];
                var next = parent.Next.Length == 0 ? Dead : parent.Next[nodeByte[node]] ?? StepLocked(parent, nodeByte[node]);
                if (next.IsDead)
                {
                    node = subtreeEnd[node];
                    continue;
                }

                at[d] = next;
                for (int t = tokenStart[node]; t < tokenStart[node + 1]; t++)
                {
                    int id = tokens[t];
                    bits[id >> 6] |= 1UL << (id & 63);
                    count++;
                }

                node++;
            }

            var mask = new TokenMask(bits, count);
            Volatile.Write(ref state.Mask, mask);
            return mask;
        }
    }

    /// <summary>
    /// Adds to <see cref="_tops"/> every top frame reachable from matching <paramref name="element"/> over
    /// <paramref name="parent"/> without reading a byte: through rule references (pushing the caller's next element,
    /// unless it is the end of its alternative: a tail call pushes nothing) and alternative ends (popping).
    /// </summary>
    private void Closure(int element, int parent, ref bool accepting)
    {
        var kind = _automaton.Lowering.Kind;
        var arg = _automaton.Lowering.Arg;
        _visited.Clear();
        _work.Push((element, parent));
        while (_work.Count > 0)
        {
            var (e, p) = _work.Pop();
            if (!_visited.Add(((long)e << 32) | (uint)p))
            {
                continue;
            }

            switch (kind[e])
            {
                case GrammarLowering.Bytes:
                    _tops.Add(Frame(e, p));
                    if (_tops.Count > MaxFramesPerState)
                    {
                        _work.Clear();
                        throw new OnnxGptException(
                            $"{_automaton.Source}: the grammar is too ambiguous: more than {MaxFramesPerState} ways to parse the text so far; make its alternatives start differently.");
                    }

                    break;
                case GrammarLowering.End:
                    if (p < 0)
                    {
                        accepting = true;
                    }
                    else
                    {
                        _work.Push((_frameElement[p], _frameParent[p]));
                    }

                    break;
                default:
                    int continuation = kind[e + 1] == GrammarLowering.End ? p : Frame(e + 1, p);
                    foreach (int alternative in _automaton.Rules[arg[e]])
                    {
                        _work.Push((alternative, continuation));
                    }

                    break;
            }
        }
    }

    private int Frame(int element, int parent)
    {
        long key = ((long)element << 32) | (uint)parent;
        if (!_frameIndex.TryGetValue(key, out int id))
        {
            id = _frameElement.Count;
            _frameElement.Add(element);
            _frameParent.Add(parent);
            _frameIndex[key] = id;
        }

        return id;
    }

    private AutomatonState Intern(bool accepting)
    {
        int[] frames = [.. _tops];
        var key = new StateKey(frames, accepting);
        if (!_states.TryGetValue(key, out var state))
        {
            state = new AutomatonState(this, frames, accepting, _states.Count);
            _states[key] = state;
        }

        return state;
    }

    private readonly struct StateKey(int[] frames, bool accepting) : IEquatable<StateKey>
    {
        private readonly int[] _frames = frames;
        private readonly bool _accepting = accepting;

        public bool Equals(StateKey other) => _accepting == other._accepting && _frames.AsSpan().SequenceEqual(other._frames);

        public override bool Equals(object? obj) => obj is StateKey other && Equals(other);

        public override int GetHashCode()
        {
            var hash = new HashCode();
            hash.Add(_accepting);
            hash.AddBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_frames.AsSpan()));
            return hash.ToHashCode();
        }
    }
}

namespace OnnxGpt.Runtime.Constraints;

/// <summary>
/// One configuration of a <see cref="ByteAutomaton"/> after some bytes: the set of parser stacks still alive
/// (each top frame waiting on a byte set) and whether the bytes so far are a whole sentence of the grammar. States
/// are interned, so equal configurations are one object, and each remembers its transitions and its token mask once
/// computed; after that, following a byte is one array read.
/// </summary>
internal sealed class AutomatonState
{
    internal AutomatonState(AutomatonTables tables, int[] frames, bool accepting, int id)
    {
        Tables = tables;
        Frames = frames;
        Accepting = accepting;
        Id = id;
        Next = frames.Length == 0 ? [] : new AutomatonState?[256];
    }

    /// <summary>The tables this state was interned in (its frames are ids there).</summary>
    public AutomatonTables Tables { get; }

    /// <summary>Sorted frame ids of the stacks' tops (each top waits on a byte set).</summary>
    public int[] Frames { get; }

    /// <summary>The bytes so far complete the grammar.</summary>
    public bool Accepting { get; }

    /// <summary>Intern id within <see cref="Tables"/>.</summary>
    public int Id { get; }

    /// <summary>No stack is alive: no byte may follow.</summary>
    public bool IsDead => Frames.Length == 0 && !Accepting;

    /// <summary>The state after each byte, filled in as needed (null: not computed yet); empty for a state with no stacks.</summary>
    public AutomatonState?[] Next { get; }

    /// <summary>The tokens allowed from here, once computed (written once, under the tables' lock).</summary>
    public TokenMask? Mask;
}

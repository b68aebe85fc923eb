namespace OnnxGpt.Runtime.Constraints;

/// <summary>The ordinary tokens (special tokens never) whose bytes keep a state alive: one bit per token id.</summary>
internal sealed class TokenMask(ulong[] bits, int count)
{
    /// <summary>Bit <c>id % 64</c> of word <c>id / 64</c> is set when token <c>id</c> is allowed.</summary>
    public ulong[] Bits { get; } = bits;

    /// <summary>How many tokens are allowed.</summary>
    public int Count { get; } = count;

    public bool Allows(int id) => (uint)id < (uint)(Bits.Length * 64) && (Bits[id >> 6] & (1UL << (id & 63))) != 0;
}

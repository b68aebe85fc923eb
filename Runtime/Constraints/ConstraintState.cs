using System.Runtime.CompilerServices;

namespace OnnxGpt.Runtime.Constraints;

/// <summary>
/// One sequence's progress through an <see cref="OutputConstraint"/>: the seam between the constraint and the
/// decoder. Before sampling, <see cref="Apply"/> masks a row of logits (disallowed tokens become −∞); after it,
/// <see cref="Advance"/> takes the chosen token; <see cref="IsComplete"/> and <see cref="CanContinue"/> say whether
/// the text may end and whether anything may follow. Once the states a sequence passes through have been met
/// before (by it or any sequence on the same constraint and tokenizer), neither call allocates. Not thread-safe:
/// one per sequence.
/// </summary>
public sealed class ConstraintState
{
    private readonly ByteAutomaton _automaton;
    private readonly int[] _endTokens;
    private readonly float[] _saved;
    private AutomatonState _state;
    private bool _ended;

    internal ConstraintState(OutputConstraint constraint, ByteAutomaton automaton, int[] endTokens)
    {
        Constraint = constraint;
        _automaton = automaton;
        _endTokens = endTokens;
        _saved = new float[endTokens.Length];
        _state = automaton.Start();
    }

    /// <summary>The constraint this state follows.</summary>
    public OutputConstraint Constraint { get; }

    /// <summary>The text so far is a whole sentence of the constraint (it may end here).</summary>
    public bool IsComplete => _state.Accepting;

    /// <summary>An end token has been taken: the sequence is over.</summary>
    public bool HasEnded => _ended;

    /// <summary>Some ordinary token may follow (false: the text is complete and nothing more fits, or it has ended).</summary>
    public bool CanContinue => !_ended && _state.Frames.Length > 0 && _state.Tables.MaskOf(_state).Count > 0;

    /// <summary>Tokens taken since the start or the last <see cref="Reset"/>.</summary>
    public int TokenCount { get; private set; }

    /// <summary>Ordinary tokens allowed next (end tokens not counted).</summary>
    public int AllowedTokenCount => _ended ? 0 : _state.Tables.MaskOf(_state).Count;

    /// <summary>Whether <paramref name="token"/> may come next.</summary>
    public bool IsAllowed(int token)
    {
        if (_ended)
        {
            return false;
        }

        if (Array.IndexOf(_endTokens, token) >= 0)
        {
            return _state.Accepting;
        }

        return _state.Tables.MaskOf(_state).Allows(token);
    }

    /// <summary>
    /// Sets every logit whose token may not come next to −∞: tokens whose bytes would break the constraint,
    /// special tokens, ids past the vocabulary, and the end tokens until the text is complete. The rest keep their
    /// values, so temperature, top-k, top-p and penalties then work on the allowed tokens alone.
    /// </summary>
    /// <exception cref="InvalidOperationException">No token may come next (the sequence has ended, or the kept text
    /// does not satisfy the constraint).</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Apply(Span<float> logits)
    {
        if (_ended || (_state.IsDead))
        {
            throw new InvalidOperationException(_ended
                ? "the constrained sequence has ended; nothing may follow its end token."
                : $"the text so far does not satisfy the constraint ({Constraint.Description}); nothing may follow it.");
        }

        for (int i = 0; i < _endTokens.Length; i++)
        {
            int id = _endTokens[i];
            _saved[i] = (uint)id < (uint)logits.Length ? logits[id] : 0;
        }

        var mask = _state.Tables.MaskOf(_state);
        if (mask.Count == 0 && !(_state.Accepting && _endTokens.Length > 0))
        {
            throw new InvalidOperationException(
                $"no token of the vocabulary continues the constraint ({Constraint.Description}) from here, and it " +
                (_state.Accepting ? "is complete but the model has no end token to stop with." : "is not complete."));
        }

        var bits = mask.Bits;
        int words = Math.Min(bits.Length, (logits.Length + 63) >> 6);
        for (int w = 0; w < words; w++)
        {
            ulong m = bits[w];
            if (m == ulong.MaxValue)
            {
                continue;
            }

            int start = w << 6, count = Math.Min(64, logits.Length - start);
            if (m == 0)
            {
                logits.Slice(start, count).Fill(float.NegativeInfinity);
                continue;
            }

            for (int j = 0; j < count; j++)
            {
                if ((m & (1UL << j)) == 0)
                {
                    logits[start + j] = float.NegativeInfinity;
                }
            }
        }

        if (words << 6 < logits.Length)
        {
            logits[(words << 6)..].Fill(float.NegativeInfinity);
        }

        for (int i = 0; i < _endTokens.Length; i++)
        {
            int id = _endTokens[i];
            if ((uint)id < (uint)logits.Length)
            {
                logits[id] = _state.Accepting ? _saved[i] : float.NegativeInfinity;
            }
        }
    }

    /// <summary>Takes the token chosen next: its bytes move the state on; an end token (allowed only when complete) ends the sequence.</summary>
    /// <exception cref="ArgumentException">The token may not come next; the state is unchanged.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Advance(int token)
    {
        if (!TryAdvance(token))
        {
            throw new ArgumentException(
                $"token {token} may not come next under the constraint ({Constraint.Description})" +
                (_ended ? ": the sequence has ended." : "; apply the mask before sampling."), nameof(token));
        }
    }

    /// <summary>Like <see cref="Advance"/>, but returns false (leaving the state unchanged) for a token that may not come next.</summary>
    public bool TryAdvance(int token)
    {
        if (_ended)
        {
            return false;
        }

        if (Array.IndexOf(_endTokens, token) >= 0)
        {
            if (!_state.Accepting)
            {
                return false;
            }

            _ended = true;
            TokenCount++;
            return true;
        }

        var vocabulary = _automaton.Vocabulary;
        if ((uint)token >= (uint)vocabulary.Size)
        {
            return false;
        }

        var bytes = vocabulary.TokenBytes(token);
        if (bytes.IsEmpty)
        {
            return false;   // a special token, or an id without bytes
        }

        var state = _state;
        var tables = state.Tables;
        foreach (byte b in bytes)
        {
            state = tables.Step(state, b);
            if (state.IsDead)
            {
                return false;
            }
        }

        _state = state;
        TokenCount++;
        return true;
    }

    /// <summary>Where the state is now, to come back to with <see cref="Restore"/> (speculative decoding takes draft tokens ahead of the sequence).</summary>
    internal Checkpoint Save() => new(_state, _ended, TokenCount);

    /// <summary>Goes back to where <see cref="Save"/> was called.</summary>
    internal void Restore(Checkpoint checkpoint) => (_state, _ended, TokenCount) = (checkpoint.State, checkpoint.Ended, checkpoint.TokenCount);

    /// <summary>Starts again from nothing generated.</summary>
    public void Reset()
    {
        _state = _automaton.Start();
        _ended = false;
        TokenCount = 0;
    }

    /// <summary>A saved position in the automaton (see <see cref="Save"/>).</summary>
    internal readonly record struct Checkpoint(AutomatonState State, bool Ended, int TokenCount);
}

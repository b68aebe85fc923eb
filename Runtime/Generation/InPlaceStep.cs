using System.Runtime.CompilerServices;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Native;

namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// The fused graph's step: one cache buffer per tensor, (rows, Hkv, Cap, D), bound as both past and present, which
/// GroupQueryAttention writes in place at each row's own length. Row b's tokens sit at cache positions
/// 0 .. <see cref="Sequence.Cached"/> − 1 (right-padded), and the mask gives each row its length (its width is the
/// longest row after the step: row b has 1 for its tokens, then 0). Rewinding moves nothing: each row keeps all but
/// its last kept token cached.
/// <para>
/// A step binds rows [0, R), R one past the last row fed. Rows in that range that are not fed run a placeholder: a
/// padding token at their next free position, which they do not keep (their cache and logits are left as they
/// were). The operator takes several new tokens per row only when no row in the run has a past (a right-padded
/// prompt), or for one row alone; so a row that has a past and gets several tokens (a prompt chunk joining rows
/// that decode) runs alone over its own (1, Hkv, Cap, D) part of the cache, and the rows fed one token each run
/// together.
/// </para>
/// <para>
/// Logits: <c>num_logits_to_keep</c> is the fewest last positions that still hold every row's last token: 1 when
/// decoding, for one row and for rows of equal length (so a prompt projects one position per row to the vocabulary),
/// T − (shortest row) + 1 for a right-padded prompt of unequal rows; 0 (every position) with an observer.
/// </para>
/// </summary>
internal sealed unsafe class InPlaceStep : DecoderStep
{
    // Per row, for the run being prepared: where its tokens start in its cache row, how many positions they take.
    private readonly int[] _start;
    private readonly int[] _count;
    private readonly int[] _single;

    // Which rows of the cache the binding holds (first, count) and for which buffers.
    private int _boundFirst = -1;
    private int _boundRows;
    private int _boundVersion;

    public InPlaceStep(GptModel model, Sequence?[] rows, int capacity, bool useCache)
        : base(model, rows, useCache)
    {
        _start = new int[rows.Length];
        _count = new int[rows.Length];
        _single = new int[rows.Length];
        Reserve(capacity);
        Cache!.RowLengths = row => SlotTable[row]?.Cached ?? 0;
    }

    protected override void OnReserve(int capacity) => ReserveCache(capacity, inPlace: true);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Run(int[] feed, LogitsObserver? observer)
    {
        int rows = Rows, last = -1, fedRows = 0;
        for (int b = 0; b < rows; b++)
        {
            if (feed[b] > 0)
            {
                last = b;
                fedRows++;
            }
        }

        if (last < 0)
        {
            return;
        }

        int maxTokens = StepTokens(last + 1, observer is not null || !Signature.HasLogitsToKeep || fedRows > 1);
        int t = 0;
        bool anyCached = false;
        for (int b = 0; b <= last; b++)
        {
            feed[b] = Math.Min(feed[b], maxTokens);
            t = Math.Max(t, feed[b]);
            anyCached |= (SlotTable[b]?.Cached ?? 0) > 0;
        }

        if (Cache!.Capacity < Capacity)
        {
            Cache.EnsureCapacity(Capacity);
        }

        if (t <= 1 || !anyCached || last == 0)
        {
            RunBatch(feed, last + 1, t, observer);
            return;
        }

        // Rows with a past and several tokens run alone (first: a prompt's first token comes one decoding step
        // sooner); then the rows fed one token run together, the others in their range as placeholders.
        int lastSingle = -1;
        for (int b = 0; b <= last; b++)
        {
            _single[b] = feed[b] == 1 ? 1 : 0;
            if (feed[b] == 1)
            {
                lastSingle = b;
            }
            else if (feed[b] > 1)
            {
                RunRow(b, feed[b], observer);
            }
        }

        if (lastSingle >= 0)
        {
            RunBatch(_single, lastSingle + 1, 1, observer);
        }
    }

    /// <summary>Each row's tokens sit at cache positions 0 .. Cached − 1: the positions copy as they are.</summary>
    protected override void CopyCache(int source, int destination, int from, int to) => Cache!.CopyRow(source, destination, from, to);

    public override void Rewind()
    {
        foreach (var sequence in SlotTable)
        {
            if (sequence is not null)
            {
                sequence.Cached = UsesCache && sequence.Length > 0 ? Math.Min(sequence.Cached, sequence.Length - 1) : 0;
            }
        }
    }

    /// <summary>
    /// Tokens per row for one step over <paramref name="rows"/> rows: attention scores (rows, H, T, Cap) within
    /// <see cref="DecoderStep.MaxStepFloats"/>, and logits (rows, T, V) too when every position may get them; at least 16.
    /// </summary>
    private int StepTokens(int rows, bool logitsForEveryPosition)
    {
        long tokens = MaxStepFloats / ((long)rows * Model.Config.Heads * Capacity);
        if (logitsForEveryPosition)
        {
            tokens = Math.Min(tokens, MaxStepFloats / ((long)rows * Vocab));
        }

        return (int)Math.Clamp(tokens, 16, int.MaxValue);
    }

    /// <summary>One run over rows [0, <paramref name="rows"/>): T = 1 (decoding), or no row with a past (a right-padded prompt), or one row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunBatch(int[] feed, int rows, int t, LogitsObserver? observer)
    {
        int total = 0, shortest = t;
        bool placeholders = false;
        for (int b = 0; b < rows; b++)
        {
            var sequence = SlotTable[b];
            int cached = sequence?.Cached ?? 0;
            if (feed[b] > 0)
            {
                (_start[b], _count[b]) = (cached, feed[b]);
            }
            else
            {
                // A placeholder writes a padding token at the row's next free position, which the row does not keep;
                // a full row instead writes its last token again over itself (the same key and value).
                placeholders = true;
                (_start[b], _count[b]) = cached < Capacity ? (cached, 1) : (cached - 1, 1);
            }

            total = Math.Max(total, _start[b] + _count[b]);
            shortest = Math.Min(shortest, _count[b]);
        }

        for (int b = 0; b < rows; b++)
        {
            var sequence = SlotTable[b];
            bool pad = feed[b] == 0 && _start[b] == (sequence?.Cached ?? 0);
            WriteRowInputs(b, pad ? default : sequence!.Tokens, _start[b], _count[b], t, total, pad);
        }

        BindCacheRows(0, rows);
        int keep = observer is not null || !Signature.HasLogitsToKeep ? t : t - shortest + 1;
        // Straight into the next-token logits when each row gets one and every row in the run is fed; else a wider
        // buffer, from which only the fed rows' logits are copied (a placeholder's are not its own).
        bool wide = keep > 1 || observer is not null || placeholders;
        var logits = wide ? WideLogits((long)rows * keep * Vocab) : NextLogits;
        BindInputsAndLogits(rows, t, total, total - t, keep, logits, 0);
        RunSession(t, total - t);

        for (int b = 0; b < rows; b++)
        {
            var sequence = SlotTable[b];
            if (feed[b] == 0 || sequence is null)
            {
                continue;
            }

            int count = _count[b];
            if (wide)
            {
                // Row b's last token sits at index count − 1 of its T positions, of which the last `keep` came back.
                long at = (long)b * keep + (count - 1) - (t - keep);
                logits.Slice(at * Vocab, Vocab).CopyTo(Logits(b));
            }

            if (observer is not null)
            {
                for (int i = 0; i < count; i++)
                {
                    observer(b, _start[b] + i, logits.Slice(((long)b * t + i) * Vocab, Vocab));
                }
            }

            sequence.Cached = _start[b] + count;
        }

        ReleaseWideLogits((long)Rows * Vocab);
    }

    /// <summary>One row's several new tokens after its cached ones, over that row's part of the cache.</summary>
    private void RunRow(int b, int t, LogitsObserver? observer)
    {
        var sequence = SlotTable[b]!;
        int start = sequence.Cached, total = start + t;
        WriteRowInputs(0, sequence.Tokens, start, t, t, total, pad: false);

        BindCacheRows(b, 1);
        int keep = observer is not null || !Signature.HasLogitsToKeep ? t : 1;
        var logits = keep == 1 ? NextLogits : WideLogits((long)keep * Vocab);
        BindInputsAndLogits(1, t, total, start, keep, logits, keep == 1 ? (long)b * Vocab : 0);
        RunSession(t, start);
        if (keep > 1)
        {
            logits.Slice((long)(keep - 1) * Vocab, Vocab).CopyTo(Logits(b));
            if (observer is not null)
            {
                for (int i = 0; i < t; i++)
                {
                    observer(b, start + i, logits.Slice((long)i * Vocab, Vocab));
                }
            }
        }
        else if (observer is not null)
        {
            observer(b, start, Logits(b));
        }

        sequence.Cached = total;
        ReleaseWideLogits((long)Rows * Vocab);
    }

    /// <summary>
    /// Writes one row of the step's inputs at <paramref name="at"/> in the (rows, T) and (rows, S) buffers: ids and
    /// positions of its <paramref name="count"/> tokens from <paramref name="start"/>, padding after them (a
    /// placeholder is padding throughout), and a mask of ones over its first start + count positions.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void WriteRowInputs(int at, ReadOnlySpan<int> tokens, int start, int count, int t, int total, bool pad)
    {
        for (int i = 0; i < t; i++)
        {
            bool real = i < count && !pad;
            WriteId((long)at * t + i, real ? tokens[start + i] : PadToken);
            WritePosition((long)at * t + i, i < count ? start + i : 0);
        }

        for (int s = 0; s < total; s++)
        {
            WriteMask((long)at * total + s, s < start + count ? 1 : 0);
        }
    }

    /// <summary>Binds cache rows [first, first + rows) in place, unless the binding already holds them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void BindCacheRows(int first, int rows)
    {
        var cache = Cache!;
        if (_boundFirst != first || _boundRows != rows || _boundVersion != cache.Version)
        {
            cache.BindInPlace(Binding, first, rows);
            (_boundFirst, _boundRows, _boundVersion) = (first, rows, cache.Version);
        }
    }
}

using System.Runtime.CompilerServices;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Native;

namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// The portable graph's step: the cache is concatenated (present = past ⊕ new) into the other of two buffers each
/// step, so every row has the same number of cache slots. The layout, which this class alone knows, is a grid of
/// slots per row: a slot holds one of the row's tokens or padding, masked out (<c>attention_mask</c> 0), with
/// positions counting only the row's own tokens, so each row computes what it would alone. A step of T slots gives
/// row b its fed tokens at the end (left-padded); a row fed nothing ends on a padding slot that repeats its last
/// token at its own position, masked, whose query sees the same keys the original did: the row's own logits again.
/// Rewinding keeps the longest slot prefix in which no row holds more than all but its last kept token
/// (<see cref="KvCache.Truncate"/> re-lays the buffers out; a device cache starts again from nothing). A model split
/// in two (Optimum's <c>decoder_model.onnx</c> + <c>decoder_with_past_model.onnx</c>) runs its first-step decoder
/// whenever the layout holds no slots yet, binding only its present outputs, and the decoder with past after that.
/// </summary>
internal sealed unsafe class ConcatenatingStep : DecoderStep
{
    /// <summary>Logits of one step stay under this (16 Mi floats, 64 MiB): longer prompts are fed in chunks.</summary>
    private const long MaxPromptLogits = 1L << 24;

    // [b · Capacity + s]: 1 where slot s of row b holds one of its tokens, 0 for padding.
    private byte[] _real = [];

    public ConcatenatingStep(GptModel model, Sequence?[] rows, int capacity, bool useCache)
        : base(model, rows, useCache)
    {
        Reserve(capacity);
    }

    /// <summary>Slots in the layout: the cache's length (0 without a cache, whose steps start from nothing).</summary>
    private int Slots => UsesCache ? Cache!.Length : 0;

    protected override void OnReserve(int capacity)
    {
        var grown = new byte[Rows * capacity];
        int old = Rows == 0 ? 0 : _real.Length / Rows;
        for (int b = 0; b < Rows && old > 0; b++)
        {
            Array.Copy(_real, b * old, grown, b * capacity, old);
        }

        _real = grown;
        if (Signature.HasCache)
        {
            ReserveCache(capacity, inPlace: false);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Run(int[] feed, LogitsObserver? observer)
    {
        int rows = Rows, t = 0;
        long chunk = UsesCache ? Math.Max(16, MaxPromptLogits / ((long)rows * Vocab)) : int.MaxValue;
        for (int b = 0; b < rows; b++)
        {
            feed[b] = (int)Math.Min(feed[b], chunk);
            t = Math.Max(t, feed[b]);
        }

        if (t == 0)
        {
            return;
        }

        if (!UsesCache)
        {
            Cache?.Truncate(0);   // every step starts from nothing
        }

        int past = Slots, total = past + t;
        if (total > Capacity)
        {
            Reserve(total);
        }

        int capacity = Capacity;
        for (int b = 0; b < rows; b++)
        {
            var sequence = SlotTable[b];
            int fed = feed[b], pad = t - fed, cached = sequence?.Cached ?? 0;
            var tokens = sequence is null ? default : sequence.Tokens;
            for (int i = 0; i < t; i++)
            {
                long at = (long)b * t + i;
                int slot = b * capacity + past + i;
                if (i < pad)
                {
                    bool repeatLast = i == t - 1 && cached > 0;
                    WriteId(at, repeatLast ? tokens[cached - 1] : PadToken);
                    WritePosition(at, Math.Max(0, cached - 1));
                    _real[slot] = 0;
                }
                else
                {
                    WriteId(at, tokens[cached + i - pad]);
                    WritePosition(at, cached + i - pad);
                    _real[slot] = 1;
                }
            }

            for (int s = 0; s < total; s++)
            {
                WriteMask((long)b * total + s, _real[b * capacity + s]);
            }
        }

        // One token per row (decoding) writes straight into the next-token logits; a prompt goes to a wider buffer.
        bool wide = t > 1 || observer is not null;
        // Without the cache every step feeds the whole sequence: size for the capacity once, not per step.
        var logits = wide ? WideLogits((long)rows * (UsesCache ? t : capacity) * Vocab) : NextLogits;
        SelectSession(past);
        BindInputsAndLogits(rows, t, total, past, t, logits, 0);
        Cache?.Bind(Binding, past, total, bindPast: !RunsFirstStep);
        RunSession(t, past);
        Cache?.Commit(total);

        for (int b = 0; b < rows; b++)
        {
            var sequence = SlotTable[b];
            if (wide)
            {
                logits.Slice(((long)b * t + t - 1) * Vocab, Vocab).CopyTo(Logits(b));
            }

            if (sequence is null || feed[b] == 0)
            {
                continue;
            }

            if (observer is not null)
            {
                int pad = t - feed[b];
                for (int i = pad; i < t; i++)
                {
                    observer(b, sequence.Cached + i - pad, logits.Slice(((long)b * t + i) * Vocab, Vocab));
                }
            }

            sequence.Cached += feed[b];
        }

        if (wide && UsesCache)
        {
            ReleaseWideLogits(0);
        }
    }

    /// <summary>
    /// Rows share the slots: the destination takes the source's slots from the one that holds the source's token
    /// <paramref name="from"/> (the destination's slots before it hold the same tokens, laid out alike) to the end,
    /// with their padding flags.
    /// </summary>
    protected override void CopyCache(int source, int destination, int from, int to)
    {
        int capacity = Capacity, slots = Slots, first = 0;
        for (int held = 0; first < slots && held < from; first++)
        {
            held += _real[source * capacity + first];
        }

        Cache!.CopyRow(source, destination, first, slots);
        Array.Copy(_real, source * capacity + first, _real, destination * capacity + first, slots - first);
    }

    public override void Rewind()
    {
        int rows = Rows, slots = Slots, capacity = Capacity;
        if (Cache is null || !UsesCache)
        {
            foreach (var sequence in SlotTable)
            {
                sequence?.Cached = 0;
            }

            Cache?.Truncate(0);
            return;
        }

        // The longest prefix of slots in which every row holds at most all but its last token.
        Span<int> target = rows <= 256 ? stackalloc int[rows] : new int[rows];
        Span<int> held = rows <= 256 ? stackalloc int[rows] : new int[rows];
        for (int b = 0; b < rows; b++)
        {
            var sequence = SlotTable[b];
            target[b] = sequence is null || sequence.Length == 0 ? 0 : Math.Min(sequence.Cached, sequence.Length - 1);
        }

        int keep = 0;
        held.Clear();
        for (int s = 0; s < slots; s++)
        {
            bool fits = true;
            for (int b = 0; b < rows; b++)
            {
                fits &= held[b] + _real[b * capacity + s] <= target[b];
            }

            if (!fits)
            {
                break;
            }

            for (int b = 0; b < rows; b++)
            {
                held[b] += _real[b * capacity + s];
            }

            keep = s + 1;
        }

        if (keep < slots && !Cache.IsHostAccessible)
        {
            keep = 0;   // device memory cannot be re-laid out from here: recompute from the start
            held.Clear();
        }

        Cache.Truncate(keep);
        for (int b = 0; b < rows; b++)
        {
            SlotTable[b]?.Cached = held[b];
        }
    }
}

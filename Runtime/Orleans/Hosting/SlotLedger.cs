using System.Diagnostics;

namespace OnnxGpt.Orleans.Hosting;

/// <summary>
/// Which conversations hold (or are about to hold) the slots of this silo's batch engine. The placement director
/// reserves a slot on the silo it picks before it answers (so two placements racing for the last slot cannot both get
/// it), the activation claims the reservation, and deactivation releases it. A reservation no activation claims lapses
/// after <see cref="ReservationLifetime"/>. Thread-safe.
/// </summary>
internal sealed class SlotLedger
{
    /// <summary>How long a reservation waits for its activation.</summary>
    public static readonly TimeSpan ReservationLifetime = TimeSpan.FromSeconds(30);

    private readonly Dictionary<GrainId, long> _entries = [];   // held: 0; reserved: when it lapses (Stopwatch ticks)
    private readonly Lock _lock = new();

    public SlotLedger(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        Capacity = capacity;
    }

    /// <summary>Slots in all.</summary>
    public int Capacity { get; }

    /// <summary>Slots held or reserved now.</summary>
    public int Taken
    {
        get
        {
            lock (_lock)
            {
                Expire();
                return _entries.Count;
            }
        }
    }

    /// <summary>Slots a new conversation could take now.</summary>
    public int Free => Capacity - Taken;

    /// <summary>Reserves a slot for <paramref name="conversation"/> (true at once when it has one); false when every slot is taken.</summary>
    public bool TryReserve(GrainId conversation)
    {
        lock (_lock)
        {
            Expire();
            if (_entries.ContainsKey(conversation))
            {
                return true;
            }

            if (_entries.Count >= Capacity)
            {
                return false;
            }

            _entries[conversation] = Stopwatch.GetTimestamp() + (long)(ReservationLifetime.TotalSeconds * Stopwatch.Frequency);
            return true;
        }
    }

    /// <summary>The activation takes its slot: its reservation, or a free slot if it has none; false when every slot is taken.</summary>
    public bool Claim(GrainId conversation)
    {
        lock (_lock)
        {
            Expire();
            if (!_entries.ContainsKey(conversation) && _entries.Count >= Capacity)
            {
                return false;
            }

            _entries[conversation] = 0;
            return true;
        }
    }

    /// <summary>Gives the conversation's slot back.</summary>
    public void Release(GrainId conversation)
    {
        lock (_lock)
        {
            _entries.Remove(conversation);
        }
    }

    private void Expire()
    {
        long now = Stopwatch.GetTimestamp();
        List<GrainId>? lapsed = null;
        foreach (var (id, until) in _entries)
        {
            if (until != 0 && until < now)
            {
                (lapsed ??= []).Add(id);
            }
        }

        foreach (var id in lapsed ?? [])
        {
            _entries.Remove(id);
        }
    }
}

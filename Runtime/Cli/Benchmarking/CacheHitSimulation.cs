namespace OnnxGpt.Cli.Benchmarking;

/// <summary>
/// A discrete-event simulation of KV-cache hits across a cluster (<c>onnxgpt bench cache-sim</c>), for the scale-out
/// plan (docs/scale-out.md). Conversations arrive as a Poisson process; each has a number of turns drawn from a
/// geometric distribution of the given mean, a fixed time per turn, and a log-normal think time between turns. Two
/// routers are compared on the same arrivals:
/// <list type="bullet">
/// <item><b>affinity</b>, what OnnxGpt.Orleans does: a conversation is placed on the sampled node with the most free
/// slots and keeps its slot (and cache) until it has been idle for the idle timeout; a turn that finds it still placed
/// is a hit; one that comes later is placed again and misses; when no node has a free slot it is refused;</item>
/// <item><b>random</b>, a router without affinity: each turn goes to a node at random, which keeps the caches of its
/// last <c>slots</c> conversations (least recently used out, never expiring: kind to the baseline).</item>
/// </list>
/// The hit rate counts returning turns (turn 2 onwards) only: a first turn has nothing to reuse under either router.
/// Deterministic for a seed.
/// </summary>
internal sealed class CacheHitSimulation(CacheHitSimulation.Settings settings)
{
    /// <summary>What is simulated.</summary>
    public sealed record Settings
    {
        public int Nodes { get; init; } = 10;

        public int Slots { get; init; } = 8;

        public double ArrivalsPerNodePerMinute { get; init; } = 2;

        public double MeanTurns { get; init; } = 2.0;

        public double TurnSeconds { get; init; } = 5;

        public double ThinkMedianSeconds { get; init; } = 20;

        public double ThinkSigma { get; init; } = 1.0;

        public double IdleTimeoutSeconds { get; init; } = 120;

        public double DurationSeconds { get; init; } = 3600;

        public int PlacementCandidates { get; init; } = 8;

        public ulong Seed { get; init; } = 1;
    }

    /// <summary>One router's outcome.</summary>
    public sealed record Outcome(string Router, long Turns, long ReturningTurns, long Hits, long Refused, double MeanSlotsHeld)
    {
        public double HitRate => ReturningTurns == 0 ? 0 : (double)Hits / ReturningTurns;
    }

    /// <summary>Both routers on the same arrivals.</summary>
    public (Outcome Affinity, Outcome Random) Run()
    {
        var turns = Arrivals();
        return (Affinity(turns), RandomRouter(turns));
    }

    /// <summary>Every turn of every conversation, in time order: (time, conversation, turn index from 0).</summary>
    internal List<(double Time, int Conversation, int Turn)> Arrivals()
    {
        var random = new Random(unchecked((int)settings.Seed));
        var list = new List<(double, int, int)>();
        double rate = settings.ArrivalsPerNodePerMinute * settings.Nodes / 60.0;
        double t = 0;
        for (int c = 0; ; c++)
        {
            t += -Math.Log(1 - random.NextDouble()) / rate;
            if (t >= settings.DurationSeconds)
            {
                break;
            }

            int count = 1;
            double p = 1 / settings.MeanTurns;
            while (random.NextDouble() > p)
            {
                count++;
            }

            double at = t;
            for (int k = 0; k < count; k++)
            {
                list.Add((at, c, k));
                at += settings.TurnSeconds + settings.ThinkMedianSeconds * Math.Exp(settings.ThinkSigma * Normal(random));
            }
        }

        list.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return list;
    }

    private Outcome Affinity(List<(double Time, int Conversation, int Turn)> turns)
    {
        var random = new Random(unchecked((int)settings.Seed) ^ 0x5EED);
        int[] free = [.. Enumerable.Repeat(settings.Slots, settings.Nodes)];
        var placed = new Dictionary<int, (int Node, double Until)>();
        var releases = new PriorityQueue<(int Conversation, double Until), double>();
        long hits = 0, returning = 0, refused = 0;
        double heldSeconds = 0, last = 0;
        int held = 0;
        foreach (var (time, conversation, turn) in turns)
        {
            // Slots of conversations idle past the timeout come back first.
            while (releases.TryPeek(out var release, out double at) && at <= time)
            {
                releases.Dequeue();
                if (placed.TryGetValue(release.Conversation, out var p) && p.Until == release.Until)
                {
                    Advance(at);
                    free[p.Node]++;
                    held--;
                    placed.Remove(release.Conversation);
                }
            }

            Advance(time);
            returning += turn > 0 ? 1 : 0;
            double until = time + settings.TurnSeconds + settings.IdleTimeoutSeconds;
            if (placed.TryGetValue(conversation, out var home))
            {
                hits += turn > 0 ? 1 : 0;
                placed[conversation] = (home.Node, until);
                releases.Enqueue((conversation, until), until);
                continue;
            }

            int node = Place(free, random);
            if (node < 0)
            {
                refused++;
                continue;
            }

            free[node]--;
            held++;
            placed[conversation] = (node, until);
            releases.Enqueue((conversation, until), until);
        }

        return new Outcome("affinity", turns.Count, returning, hits, refused, heldSeconds / Math.Max(last, 1) / settings.Nodes);

        void Advance(double to)
        {
            heldSeconds += held * (to - last);
            last = to;
        }
    }

    /// <summary>The sampled node with the most free slots (all nodes if the sample has none), or -1 when every slot is held.</summary>
    private int Place(int[] free, Random random)
    {
        int best = -1;
        int asked = Math.Min(settings.PlacementCandidates, free.Length);
        for (int i = 0; i < asked; i++)
        {
            int n = asked == free.Length ? i : random.Next(free.Length);
            if (free[n] > 0 && (best < 0 || free[n] > free[best]))
            {
                best = n;
            }
        }

        if (best < 0 && asked < free.Length)
        {
            for (int n = 0; n < free.Length; n++)
            {
                if (free[n] > 0 && (best < 0 || free[n] > free[best]))
                {
                    best = n;
                }
            }
        }

        return best;
    }

    private Outcome RandomRouter(List<(double Time, int Conversation, int Turn)> turns)
    {
        var random = new Random(unchecked((int)settings.Seed) ^ 0x0DD);
        var caches = Enumerable.Range(0, settings.Nodes).Select(_ => new LinkedList<int>()).ToArray();
        var entries = Enumerable.Range(0, settings.Nodes).Select(_ => new Dictionary<int, LinkedListNode<int>>()).ToArray();
        long hits = 0, returning = 0;
        foreach (var (_, conversation, turn) in turns)
        {
            int node = random.Next(settings.Nodes);
            returning += turn > 0 ? 1 : 0;
            if (entries[node].Remove(conversation, out var entry))
            {
                hits += turn > 0 ? 1 : 0;
                caches[node].Remove(entry);
            }
            else if (caches[node].Count >= settings.Slots)
            {
                entries[node].Remove(caches[node].Last!.Value);
                caches[node].RemoveLast();
            }

            entries[node][conversation] = caches[node].AddFirst(conversation);
        }

        return new Outcome("random", turns.Count, returning, hits, 0, settings.Slots);
    }

    private static double Normal(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}

using System.Globalization;
using System.Text;
using System.Text.Json;

namespace OnnxGpt.Cli.Benchmarking;

/// <summary>
/// Reads an ONNX Runtime profile (Chrome trace JSON: one <c>model_run</c> event per run, one <c>*_kernel_time</c>
/// event per kernel) and sums the kernel time per operator type, per kind of run. A run's kind comes from its own
/// shapes: T, the tokens it fed (the indices of its first <c>Gather</c>, (B, T)), and S, the tokens it attended over
/// (the attention mask its <c>ReduceSum</c> reads, (B, S), in the fused graph): T &gt; 1 is a prompt of T tokens,
/// T = 1 a decoding step, put with the largest context c of <paramref name="contexts"/> below S (steps at no more
/// than the smallest context are a warm-up's).
/// </summary>
internal static class OrtProfile
{
    /// <summary>The per-operator table of every kind of run in the profile at <paramref name="path"/>, as text.</summary>
    public static string Summarize(string path, IReadOnlyList<int> contexts)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var runs = new List<(long Start, long End)>();
        var kernels = new List<(long Start, long Duration, string Op, JsonElement Args)>();
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            string cat = e.GetProperty("cat").GetString() ?? "", name = e.GetProperty("name").GetString() ?? "";
            long ts = e.GetProperty("ts").GetInt64(), dur = e.GetProperty("dur").GetInt64();
            if (cat == "Session" && name == "model_run")
            {
                runs.Add((ts, ts + dur));
            }
            else if (cat == "Node" && name.EndsWith("_kernel_time", StringComparison.Ordinal))
            {
                var args = e.GetProperty("args").Clone();
                kernels.Add((ts, dur, args.GetProperty("op_name").GetString() ?? "?", args));
            }
        }

        runs.Sort();
        kernels.Sort((a, b) => a.Start.CompareTo(b.Start));
        var groups = new SortedDictionary<string, Group>(StringComparer.Ordinal);
        int k = 0;
        foreach (var (start, end) in runs)
        {
            var ops = new Dictionary<string, (long Us, int Nodes)>();
            int t = -1, s = -1;
            for (; k < kernels.Count && kernels[k].Start <= end; k++)
            {
                var (ks, dur, op, args) = kernels[k];
                if (ks < start)
                {
                    continue;
                }

                var now = ops.GetValueOrDefault(op);
                ops[op] = (now.Us + dur, now.Nodes + 1);
                if (t < 0 && op == "Gather")
                {
                    t = Dim(args, input: 1, axis: 1);
                }

                if (s < 0 && op == "ReduceSum")
                {
                    s = Dim(args, input: 0, axis: 1);
                }
            }

            string kind = t > 1 ? $"prompt of {t} tokens"
                : s < 0 ? "decode"
                : s <= contexts.Min() ? $"decode under {contexts.Min()} tokens of context (warm-up)"
                : $"decode @{contexts.Where(c => c < s).Max()}";
            if (!groups.TryGetValue(kind, out var g))
            {
                groups[kind] = g = new Group();
            }

            g.Add(end - start, ops);
        }

        var text = new StringBuilder();
        foreach (var (kind, g) in groups)
        {
            double total = g.Ops.Values.Sum(v => v.Us) / (double)g.Runs / 1000;
            text.AppendLine(CultureInfo.InvariantCulture,
                $"{kind}: {g.Runs} runs, {g.RunUs / (double)g.Runs / 1000:F3} ms per run, of which kernels {total:F3} ms");
            double rest = 0;
            int others = 0;
            foreach (var (op, v) in g.Ops.OrderByDescending(kv => kv.Value.Us))
            {
                double ms = v.Us / (double)g.Runs / 1000;
                if (ms < total / 100)
                {
                    rest += ms;
                    others++;
                    continue;
                }

                text.AppendLine(CultureInfo.InvariantCulture,
                    $"  {op,-28} {ms,9:F3} ms {100 * ms / total,5:F1} %  ({v.Nodes / g.Runs} nodes)");
            }

            if (others > 0)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"  {others} other operators    {rest,9:F3} ms {100 * rest / total,5:F1} %");
            }
        }

        return text.ToString();
    }

    /// <summary>Dimension <paramref name="axis"/> of input <paramref name="input"/> in a kernel event's shapes; −1 where absent.</summary>
    private static int Dim(JsonElement args, int input, int axis)
    {
        if (!args.TryGetProperty("input_type_shape", out var shapes) || shapes.GetArrayLength() <= input)
        {
            return -1;
        }

        foreach (var typed in shapes[input].EnumerateObject())
        {
            var dims = typed.Value;
            return dims.GetArrayLength() > axis ? dims[axis].GetInt32() : -1;
        }

        return -1;
    }

    private sealed class Group
    {
        public int Runs { get; private set; }

        public long RunUs { get; private set; }

        public Dictionary<string, (long Us, int Nodes)> Ops { get; } = new(StringComparer.Ordinal);

        public void Add(long runUs, Dictionary<string, (long Us, int Nodes)> ops)
        {
            Runs++;
            RunUs += runUs;
            foreach (var (op, v) in ops)
            {
                var now = Ops.GetValueOrDefault(op);
                Ops[op] = (now.Us + v.Us, now.Nodes + v.Nodes);
            }
        }
    }
}

namespace OnnxGpt.Bench.Load;

/// <summary>Aggregate decode throughput against concurrency, ours over HTTP beside llama.cpp's batched decoding, as a PNG.</summary>
public static class ThroughputChart
{
    public static void Write(string path, LoadOptions o, Dictionary<(string Variant, int Clients), List<double>> ours, Dictionary<string, Dictionary<int, List<double>>>? llama)
    {
        var plot = new ScottPlot.Plot();
        // One colour per weight type: ours solid, llama.cpp's counterpart dashed.
        var colours = new Dictionary<string, ScottPlot.Color>
        {
            ["fp32"] = ScottPlot.Color.FromHex("#1f77b4"),
            ["int4"] = ScottPlot.Color.FromHex("#ff7f0e"),
            ["f32"] = ScottPlot.Color.FromHex("#1f77b4"),
            ["q4_0"] = ScottPlot.Color.FromHex("#ff7f0e"),
        };
        foreach (var variant in o.Variants)
        {
            var points = o.Clients.Where(n => ours.ContainsKey((variant, n))).Select(n => (n, LoadBench.Percentile(ours[(variant, n)], 50))).ToArray();
            var line = plot.Add.Scatter(points.Select(p => (double)p.n).ToArray(), points.Select(p => p.Item2).ToArray());
            string weights = variant == "int4" ? "int4" : "fp32";
            line.LegendText = $"OnnxGpt serve, {weights} (HTTP, {o.NewTokens} tokens/client)";
            line.LineWidth = 2;
            line.Color = colours[weights];
        }

        foreach (var (type, rates) in llama ?? [])
        {
            var points = rates.OrderBy(kv => kv.Key).Select(kv => (kv.Key, LoadBench.Percentile(kv.Value, 50))).ToArray();
            var line = plot.Add.Scatter(points.Select(p => (double)p.Key).ToArray(), points.Select(p => p.Item2).ToArray());
            line.LegendText = $"llama.cpp {type.ToUpperInvariant()} --parallel (in process)";
            line.LinePattern = ScottPlot.LinePattern.Dashed;
            line.LineWidth = 2;
            line.Color = colours.GetValueOrDefault(type, ScottPlot.Colors.Gray);
        }

        plot.Title($"{o.Preset}, {o.Threads} CPU threads: aggregate decode throughput");
        plot.XLabel("concurrent sequences");
        plot.YLabel("generated tokens/s (all sequences)");
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            [.. o.Clients.Select(n => (double)n)], [.. o.Clients.Select(n => n.ToString(System.Globalization.CultureInfo.InvariantCulture))]);
        plot.Axes.AutoScale();
        plot.Axes.SetLimitsY(0, plot.Axes.GetLimits().Top * 1.1);
        plot.ShowLegend(ScottPlot.Alignment.LowerRight);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        plot.SavePng(path, 800, 500);
    }
}

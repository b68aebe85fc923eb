using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace OnnxGpt.Cli.Benchmarking;

/// <summary>
/// llama.cpp beside our engines: runs the llamabench tool (llama.cpp through LLamaSharp on a GGUF of the GPT-2 124M
/// shape with seeded weights) for one repetition and reads its <c>results.json</c>. It measures a 512-token prompt
/// and 128 decoded tokens after 16 and after 512 tokens; its own GGUF files are written once into its work folder.
/// </summary>
internal static class LlamaBenchRunner
{
    public const string EngineName = "llama.cpp";

    /// <summary>The llama.cpp weight type compared with each of our variants (null: none).</summary>
    public static string? Counterpart(string variant) => variant switch
    {
        "portable" or "fused" or "fused-kv16" => "f32",
        "int8" => "q8_0",
        "int4" or "int4-kv16" => "q4_0",
        _ => null,
    };

    /// <summary>One llamabench repetition for every variant that has a counterpart; a measurement per variant.</summary>
    public static List<EngineMeasurement> Run(ComparisonSettings o, IReadOnlyList<string> variants, double bandwidthGBps)
    {
        var types = variants.Select(Counterpart).OfType<string>().Distinct().ToList();
        if (types.Count == 0)
        {
            return [];
        }

        string work = Path.Combine(o.Work, "llamabench");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[]
        {
            o.LlamaBench!, "--work", work, "--variants", string.Join(',', types), "--reps", "1",
            "--threads", o.Threads.ToString(CultureInfo.InvariantCulture), "--bw", bandwidthGBps.ToString("F1", CultureInfo.InvariantCulture),
        })
        {
            start.ArgumentList.Add(a);
        }

        // The first run finds no llamabench/ in the work folder yet: a stale results.json is removed only where there is one.
        Directory.CreateDirectory(work);
        string results = Path.Combine(work, "results.json");
        File.Delete(results);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0 || !File.Exists(results))
        {
            throw new OnnxGptException($"llamabench failed (exit {process.ExitCode}, no {results}): {stderr.Result}{stdout}");
        }

        using var json = JsonDocument.Parse(File.ReadAllText(results));
        var byType = new Dictionary<string, JsonElement>();
        foreach (var v in json.RootElement.GetProperty("variants").EnumerateArray())
        {
            byType[v.GetProperty("variant").GetString()!] = v.Clone();
        }

        var measurements = new List<EngineMeasurement>();
        foreach (var variant in variants)
        {
            if (Counterpart(variant) is not { } type)
            {
                continue;
            }

            if (!byType.TryGetValue(type, out var r))
            {
                throw new OnnxGptException($"llamabench's {results} has no '{type}' entry; it has {string.Join(", ", byType.Keys)}.");
            }

            measurements.Add(new EngineMeasurement
            {
                Engine = EngineName,
                Variant = variant,
                TimeToFirstTokenMs = double.NaN,
                PromptTokens = 512,
                PromptRate = r.GetProperty("prompt512_tps_median").GetDouble(),
                DecodeTokensPerSecond = new()
                {
                    [16] = r.GetProperty("decode16_tps_median").GetDouble(),
                    [512] = r.GetProperty("decode512_tps_median").GetDouble(),
                },
                LoadSeconds = double.NaN,
                PeakWorkingSetMiB = double.NaN,
            });
        }

        return measurements;
    }
}

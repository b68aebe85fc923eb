using System.Text;
using OnnxGpt.Contracts;

namespace OnnxGpt.Tests.Fuzz;

/// <summary>How one mutated input ended.</summary>
internal enum FuzzOutcome
{
    /// <summary>The loader accepted it.</summary>
    Accepted,

    /// <summary>A clean refusal: an <see cref="OnnxGptException"/> (or, for the server, a 400).</summary>
    CleanError,

    /// <summary>Any other exception: a bug.</summary>
    Other,

    /// <summary>Ran past the per-case time limit: a hang.</summary>
    Hang,
}

/// <summary>The counts of one loader's run, and the first few failures.</summary>
internal sealed record FuzzReport(string Loader, int Cases, int Accepted, int CleanErrors, int Others, int Hangs, long MaxAllocatedBytes, IReadOnlyList<string> Failures)
{
    public override string ToString() =>
        $"{Loader}: {Cases} cases, {Accepted} accepted, {CleanErrors} clean errors, {Others} other, {Hangs} hangs, " +
        $"max {MaxAllocatedBytes / 1048576.0:F1} MiB allocated in one case";
}

/// <summary>
/// Deterministic, seeded mutation fuzzing of a loader: each case mutates a valid input (bit flips, bytes replaced by
/// JSON and protobuf punctuation, ranges deleted or repeated, hostile tokens spliced in: huge and negative numbers,
/// escaped surrogates, paths that escape, duplicate keys), runs the loader on it with a time limit, and classifies
/// the result. The property every loader must keep: nothing but acceptance or a clean error, no hang, and no case
/// allocating more than the bound (managed allocations on the loader's thread, measured per case).
/// </summary>
internal static class MutationFuzzer
{
    /// <summary>Managed bytes one case may allocate.</summary>
    public const long AllocationBound = 1L << 30;

    /// <summary>How long one case may run before it counts as a hang.</summary>
    public static readonly TimeSpan CaseLimit = TimeSpan.FromSeconds(10);

    /// <summary>Cases per loader: the normal test run's count, times ONNXGPT_FUZZ_SCALE when set (build.ps1 fuzz).</summary>
    public static int Cases(int normal) =>
        int.TryParse(Environment.GetEnvironmentVariable("ONNXGPT_FUZZ_SCALE"), out int scale) && scale > 1 ? normal * scale : normal;

    private static readonly string[] Tokens =
    [
        "1e20", "-1", "0", "2147483647", "2147483648", "-2147483649", "1e308", "1e-320", "3e8", "1.5e9", "NaN", "null", "true",
        "[]", "{}", "\"\"", "\"../x\"", "\"/etc/passwd\"", "\"a\\u0000b\"", "\"\\ud83d\"", "\"\\udc00\"", "\"\\ud83d\\ude42\"",
        "\"abc\"", ",\"a\":1,\"a\":2", "[[[[[[[[[[[[", "]]]]", "\"\\", "99999999999999999999999",
    ];

    private static readonly byte[] Punctuation = "{}[]\",:\\-0123456789eE. \n"u8.ToArray();

    /// <summary>One mutation of <paramref name="input"/>, deterministic for the generator's state.</summary>
    public static byte[] Mutate(byte[] input, DeterministicRandom random)
    {
        var bytes = new List<byte>(input);
        int edits = 1 + random.NextInt(4);
        for (int e = 0; e < edits; e++)
        {
            int at = bytes.Count == 0 ? 0 : random.NextInt(bytes.Count);
            switch (random.NextInt(8))
            {
                case 0 when bytes.Count > 0:
                    bytes[at] ^= (byte)(1 << random.NextInt(8));
                    break;
                case 1 when bytes.Count > 0:
                    bytes[at] = random.NextInt(3) == 0 ? (byte)random.NextInt(256) : Punctuation[random.NextInt(Punctuation.Length)];
                    break;
                case 2 when bytes.Count > 0:
                    bytes.RemoveRange(at, Math.Min(bytes.Count - at, 1 + random.NextInt(16)));
                    break;
                case 3 when bytes.Count > 0:
                    int length = Math.Min(bytes.Count - at, 1 + random.NextInt(64));
                    bytes.InsertRange(at, bytes.GetRange(at, length));
                    break;
                case 4:
                case 5:
                    bytes.InsertRange(at, Encoding.UTF8.GetBytes(Tokens[random.NextInt(Tokens.Length)]));
                    break;
                case 6 when bytes.Count > 0:
                    // Replace a number in place (JSON) with a hostile one.
                    int start = bytes.FindIndex(at, b => b is >= (byte)'0' and <= (byte)'9');
                    if (start >= 0)
                    {
                        int end = start;
                        while (end < bytes.Count && bytes[end] is >= (byte)'0' and <= (byte)'9')
                        {
                            end++;
                        }

                        bytes.RemoveRange(start, end - start);
                        bytes.InsertRange(start, Encoding.UTF8.GetBytes(Tokens[random.NextInt(9)]));
                    }

                    break;
                default:
                    if (bytes.Count > 0 && random.NextInt(4) == 0)
                    {
                        bytes.RemoveRange(at, bytes.Count - at);   // truncated
                    }
                    else if (bytes.Count > 0)
                    {
                        bytes.Insert(at, (byte)random.NextInt(256));
                    }

                    break;
            }
        }

        return [.. bytes];
    }

    /// <summary>
    /// Runs <paramref name="cases"/> mutations of <paramref name="seedInput"/> through <paramref name="load"/>;
    /// <paramref name="isClean"/> says which exceptions count as a clean refusal (by default <see cref="OnnxGptException"/>).
    /// </summary>
    public static FuzzReport Run(string loader, byte[] seedInput, Action<byte[]> load, int cases, ulong seed, Func<Exception, bool>? isClean = null)
    {
        isClean ??= e => e is OnnxGptException;
        var random = new DeterministicRandom(seed);
        int accepted = 0, clean = 0, others = 0, hangs = 0;
        long maxAllocated = 0;
        var failures = new List<string>();
        for (int i = 0; i < cases; i++)
        {
            byte[] input = i == 0 ? seedInput : Mutate(seedInput, random);
            var task = Task.Factory.StartNew(() =>
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                try
                {
                    load(input);
                    return (FuzzOutcome.Accepted, GC.GetAllocatedBytesForCurrentThread() - before, (Exception?)null);
                }
                catch (Exception e)
                {
                    return (isClean(e) ? FuzzOutcome.CleanError : FuzzOutcome.Other, GC.GetAllocatedBytesForCurrentThread() - before, e);
                }
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            if (!task.Wait(CaseLimit))
            {
                hangs++;
                failures.Add($"case {i}: hangs ({Preview(input)})");
                continue;
            }

            var (outcome, allocated, error) = task.Result;
            maxAllocated = Math.Max(maxAllocated, allocated);
            switch (outcome)
            {
                case FuzzOutcome.Accepted:
                    accepted++;
                    break;
                case FuzzOutcome.CleanError:
                    clean++;
                    break;
                default:
                    others++;
                    if (failures.Count < 5)
                    {
                        failures.Add($"case {i}: {error!.GetType().Name}: {error.Message} ({Preview(input)})\n{error.StackTrace}");
                    }

                    break;
            }

            if (allocated > AllocationBound && failures.Count < 5)
            {
                failures.Add($"case {i}: allocated {allocated} bytes ({Preview(input)})");
            }
        }

        return new FuzzReport(loader, cases, accepted, clean, others, hangs, maxAllocated, failures);
    }

    /// <summary>Asserts the property and writes the counts where the test log shows them.</summary>
    public static void AssertHolds(FuzzReport report)
    {
        Console.WriteLine("fuzz " + report);
        Assert.IsGreaterThan(0, report.Accepted, $"{report.Loader}: not even the unmutated input was accepted.");
        Assert.AreEqual(0, report.Others + report.Hangs, $"{report}\n{string.Join("\n", report.Failures)}");
        Assert.IsLessThanOrEqualTo(AllocationBound, report.MaxAllocatedBytes, report.ToString());
    }

    private static string Preview(byte[] input)
    {
        string text = Encoding.UTF8.GetString(input, 0, Math.Min(input.Length, 160));
        return text.Replace("\n", "\\n", StringComparison.Ordinal) + (input.Length > 160 ? "..." : "");
    }
}

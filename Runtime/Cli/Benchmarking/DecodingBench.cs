using System.Diagnostics;
using static System.FormattableString;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Providers;

namespace OnnxGpt.Cli.Benchmarking;

/// <summary>
/// <c>onnxgpt bench decoding</c>: what the decoding controls cost per step on one model, against the plain greedy
/// step measured in the same repetition. In one process, each repetition decodes the same seeded prompt greedily
/// (the baseline), with OpenAI's options on (sampling, presence and frequency penalties, logit bias, n-gram ban),
/// greedily recording log-probabilities, as n = 4 sampled sequences of the prompt, and as a 4-beam search; for
/// each, the median decode step and the managed bytes per step; for the beams, the cache positions copied per step
/// and the time those copies take.
/// </summary>
internal static class DecodingBench
{
    /// <summary>The runs of one repetition, in order (the biased tokens are GPT-2's ',', '.' and ' the', within any vocabulary).</summary>
    private static (string Name, GenerationOptions Options)[] RunsFor(int vocab) =>
    [
        ("greedy", new GenerationOptions { DoSample = false }),
        ("openai options", new GenerationOptions
        {
            Temperature = 1.0, TopK = 50, PresencePenalty = 0.5, FrequencyPenalty = 0.5, NoRepeatNgramSize = 3,
            LogitBias = new Dictionary<int, double> { [11 % vocab] = 2, [13 % vocab] = -2, [262 % vocab] = 1 },
        }),
        ("greedy + top_logprobs 5", new GenerationOptions { DoSample = false, TopLogProbs = 5 }),
        ("n = 4 sampled", new GenerationOptions { Temperature = 1.0, TopK = 50, NumReturnSequences = 4 }),
        ("4 beams", new GenerationOptions { NumBeams = 4, EarlyStopping = BeamEarlyStopping.Never }),
    ];

    private sealed record Run(double StepMs, double BytesPerStep, double CopiedPerStep, double CopyMsPerStep);

    public static void Execute(string variant, string folder, int threads, int reps, int promptLength, int newTokens, TextWriter stdout)
    {
        using var model = GptModel.Load(folder, new SessionSettings { Providers = [new CpuProvider(threads)] });
        var runs = RunsFor(model.Config.VocabSize);
        var random = new Random(1);
        int[] prompt = [.. Enumerable.Range(0, promptLength).Select(_ => random.Next(model.Config.VocabSize))];
        Decode(model, prompt, runs[0].Options, 8);   // warm-up: JIT and ONNX Runtime's first runs
        var results = runs.Select(_ => new List<Run>()).ToArray();
        for (int rep = 0; rep < reps; rep++)
        {
            for (int i = 0; i < runs.Length; i++)
            {
                var run = Decode(model, prompt, runs[i].Options with { Seed = (ulong)(rep + 1) }, newTokens);
                results[i].Add(run);
                string copies = run.CopiedPerStep > 0
                    ? Invariant($", {run.CopiedPerStep:F1} cache positions copied per step in {run.CopyMsPerStep:F3} ms")
                    : "";
                stdout.WriteLine(Invariant($"  rep {rep + 1} {variant,-6} {runs[i].Name,-24} step {run.StepMs:F2} ms, {run.BytesPerStep:F0} B/step{copies}"));
            }
        }

        long bytesPerPosition = 2L * model.Config.Layers * model.Config.KvHeads * model.Config.HeadSize * 4;
        stdout.WriteLine($"| {variant} run | decode step ms | ÷ greedy | managed B/step | cache positions copied/step | copy ms/step | copy ÷ step |");
        for (int i = 0; i < runs.Length; i++)
        {
            double step = Median(results[i], r => r.StepMs), ratio = SampleStatistics.Median(Enumerable.Range(0, reps).Select(r => results[i][r].StepMs / results[0][r].StepMs));
            double copied = Median(results[i], r => r.CopiedPerStep), copyMs = Median(results[i], r => r.CopyMsPerStep);
            string copies = copied > 0
                ? Invariant($"{copied:F1} ({copied * bytesPerPosition / 1024:F0} KiB) | {copyMs:F3} | {100 * Median(results[i], r => r.CopyMsPerStep / r.StepMs):F2}% |")
                : "0 | 0 | 0 |";
            stdout.WriteLine(Invariant($"| {runs[i].Name} | {step:F2} | {ratio:F3} | {Median(results[i], r => r.BytesPerStep):F0} | {copies}"));
        }
    }

    private static double Median<T>(IEnumerable<T> items, Func<T, double> f) => SampleStatistics.Median(items.Select(f));

    /// <summary>Decodes <paramref name="newTokens"/> steps after the prompt's: the median step, and per step the bytes allocated and the cache copied.</summary>
    private static Run Decode(GptModel model, int[] prompt, GenerationOptions options, int newTokens)
    {
        options = options with { MaxNewTokens = newTokens };
        using var generator = model.CreateGenerator(options, new GeneratorOptions { DecodeText = false, StopAtEndOfSequence = false });
        generator.Append(prompt);
        generator.GenerateNextToken();   // the prompt (and, for beams, the first fork of the prompt's cache)
        long copiedBefore = generator.CopiedCachePositions;
        var copyBefore = generator.CacheCopyTime;
        var steps = new List<double>(newTokens);
        long bytes = 0;
        while (!generator.IsDone)
        {
            long allocated = GC.GetAllocatedBytesForCurrentThread();
            long start = Stopwatch.GetTimestamp();
            generator.GenerateNextToken();
            double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            bytes += GC.GetAllocatedBytesForCurrentThread() - allocated;
            steps.Add(ms);
        }

        int count = Math.Max(1, steps.Count);
        return new Run(SampleStatistics.Median(steps), (double)bytes / count, (double)(generator.CopiedCachePositions - copiedBefore) / count,
            (generator.CacheCopyTime - copyBefore).TotalMilliseconds / count);
    }
}

using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>
/// OpenAI's presence and frequency penalties, the logit bias, Hugging Face's no-repeat n-gram ban and the recorded
/// log-probabilities, each against a plain implementation of its definition (<see cref="ReferenceDecoding.Process"/>).
/// </summary>
[TestClass]
public sealed class SamplerOpenAiOptionsTests
{
    private const int Vocabulary = 40;

    private static float[] RandomLogits(ulong seed)
    {
        var random = new DeterministicRandom(seed);
        return [.. Enumerable.Range(0, Vocabulary).Select(_ => (float)((random.NextDouble() * 2 - 1) * 3))];
    }

    private static readonly int[] Previous = [3, 7, 7, 12, 3, 7, 30, 12, 5];   // a 4-token prompt, then 5 generated

    public static IEnumerable<object[]> Options() =>
    [
        [new GenerationOptions { PresencePenalty = 1.5 }, "presence"],
        [new GenerationOptions { FrequencyPenalty = 0.9 }, "frequency"],
        [new GenerationOptions { PresencePenalty = -2, FrequencyPenalty = 2 }, "both, signs apart"],
        [new GenerationOptions { LogitBias = new Dictionary<int, double> { [7] = 5, [30] = -100, [0] = 0.25 } }, "logit bias"],
        [new GenerationOptions { NoRepeatNgramSize = 2 }, "no-repeat bigrams"],
        [new GenerationOptions { NoRepeatNgramSize = 1 }, "no-repeat unigrams"],
        [new GenerationOptions { RepetitionPenalty = 1.3, PresencePenalty = 0.5, FrequencyPenalty = 0.25, LogitBias = new Dictionary<int, double> { [12] = 3 }, NoRepeatNgramSize = 3 }, "all"],
    ];

    [TestMethod]
    [DynamicData(nameof(Options))]
    public void GreedyPicksTheArgmaxOfThePlainDefinition(GenerationOptions options, string what)
    {
        for (ulong seed = 1; seed <= 30; seed++)
        {
            var logits = RandomLogits(seed);
            var expected = ReferenceDecoding.Process([.. logits.Select(x => (double)x)], Previous, 4, options);
            int want = Array.IndexOf(expected, expected.Max());
            int got = new Sampler(options with { DoSample = false }).Sample(logits, Previous, 4, new float[Sampler.ScratchLength(Vocabulary)]);
            Assert.AreEqual(want, got, $"{what}, seed {seed}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Options))]
    public void SamplingDrawsFromThePlainDefinitionsDistribution(GenerationOptions options, string what)
    {
        // The same seeded draw walked over the plain definition's probabilities (ids in order, no top-k or top-p),
        // with the sampler's own float rounding of each unnormalised probability.
        const double temperature = 0.8;
        var sampling = options with { DoSample = true, Temperature = temperature, TopK = 0, TopP = 1, Seed = 99, TopLogProbs = 0 };
        var sampler = new Sampler(sampling);
        var random = new DeterministicRandom(99);
        var scratch = new float[Sampler.ScratchLength(Vocabulary)];
        for (ulong seed = 1; seed <= 40; seed++)
        {
            var logits = RandomLogits(seed);
            var processed = ReferenceDecoding.Process([.. logits.Select(x => (double)x)], Previous, 4, options);
            var work = processed.Select(x => (float)x).ToArray();
            float max = work.Max();
            var e = work.Select(x => float.IsNegativeInfinity(x) ? 0f : (float)Math.Exp(((double)x - max) / temperature)).ToArray();
            double total = e.Sum(x => (double)x), target = random.NextDouble() * total, sum = 0;
            int want = -1;
            for (int i = 0; i < e.Length && want < 0; i++)
            {
                sum += e[i];
                want = e[i] > 0 && sum > target ? i : -1;
            }

            int got = sampler.Sample(logits, Previous, 4, scratch);
            Assert.AreEqual(want, got, $"{what}, draw {seed}");
            Assert.AreEqual(Math.Log(e[got] / total), sampler.LastLogProb, 1e-6, $"{what}, draw {seed}: the processed log-probability");
        }
    }

    [TestMethod]
    public void PenaltiesCountOnlyTheGeneratedTokensAndOncePerDistinctToken()
    {
        float[] logits = new float[Vocabulary];
        var scratch = new float[Sampler.ScratchLength(Vocabulary)];
        // Greedy with every logit 0: the penalised tokens lose, and the lowest id not penalised wins.
        var presence = new Sampler(new GenerationOptions { DoSample = false, PresencePenalty = 1, TopLogProbs = 0 });
        Assert.AreEqual(1, presence.Sample(logits, [0, 0, 0], 0, scratch), "token 0 seen in the output is penalised");
        Assert.AreEqual(0, presence.Sample(logits, [0, 0, 0], 3, scratch), "the prompt's tokens are not (OpenAI counts the completion)");
        // Frequency: token 0 twice (-2), token 1 once (-1): both below 0; presence and frequency add.
        var both = new GenerationOptions { PresencePenalty = 0.5, FrequencyPenalty = 1 };
        var work = new float[Vocabulary];
        Sampler.ApplyOpenAiPenalties(work, [0, 1, 0], new int[Vocabulary], 0.5f, 1f);
        Assert.AreEqual(-2.5f, work[0]);
        Assert.AreEqual(-1.5f, work[1]);
        Assert.AreEqual(0f, work[2]);
        both.Validate();
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new GenerationOptions { PresencePenalty = 2.5 }.Validate());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new GenerationOptions { FrequencyPenalty = double.NaN }.Validate());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new GenerationOptions { LogitBias = new Dictionary<int, double> { [3] = 101 } }.Validate());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new GenerationOptions { LogitBias = new Dictionary<int, double> { [-1] = 1 } }.Validate());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new GenerationOptions { TopLogProbs = 21 }.Validate());
    }

    [TestMethod]
    public void EveryOptionOnAllocatesNothingPerToken()
    {
        var options = new GenerationOptions
        {
            Temperature = 0.9, TopK = 10, TopP = 0.9, RepetitionPenalty = 1.2, PresencePenalty = 0.5, FrequencyPenalty = 0.5,
            LogitBias = new Dictionary<int, double> { [3] = 1, [9] = -2 }, NoRepeatNgramSize = 2, Seed = 5,
        };
        var sampler = new Sampler(options);
        var scratch = new float[Sampler.ScratchLength(Vocabulary)];
        var logits = RandomLogits(3);
        var previous = Enumerable.Range(0, 200).Select(i => i * 7 % Vocabulary).ToArray();
        sampler.Sample(logits, previous, 10, scratch);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            sampler.Sample(logits, previous, 10, scratch);
        }

        Assert.AreEqual(0, GC.GetAllocatedBytesForCurrentThread() - before, "bytes allocated by 1000 samples");
    }
}

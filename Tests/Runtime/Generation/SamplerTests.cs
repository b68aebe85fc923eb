using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Tests.Runtime.Generation;

[TestClass]
public sealed class SamplerTests
{
    private static float[] RandomLogits(int vocabulary, ulong seed, double scale = 3.0)
    {
        var random = new DeterministicRandom(seed);
        var logits = new float[vocabulary];
        for (var i = 0; i < logits.Length; i++)
        {
            logits[i] = (float)((random.NextDouble() * 2 - 1) * scale);
        }

        return logits;
    }

    private static int Sample(GenerationOptions options, float[] logits, int[]? previous = null) =>
        new Sampler(options).Sample(logits, previous ?? [], new float[Sampler.ScratchLength(logits.Length)]);

    private static double[] Softmax(float[] logits, double temperature)
    {
        var max = logits.Max();
        var e = logits.Select(x => Math.Exp((x - max) / temperature)).ToArray();
        var sum = e.Sum();
        return [.. e.Select(x => x / sum)];
    }

    private static double[] Frequencies(Sampler sampler, float[] logits, int draws)
    {
        var counts = new double[logits.Length];
        var scratch = new float[Sampler.ScratchLength(logits.Length)];
        for (var i = 0; i < draws; i++)
        {
            counts[sampler.Sample(logits, [], scratch)]++;
        }

        return [.. counts.Select(c => c / draws)];
    }

    private static void AssertClose(double[] expected, double[] actual, double tolerance, string what)
    {
        var worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        Assert.IsLessThanOrEqualTo(tolerance, worst,
            $"{what}: max |expected - observed| = {worst:F5}; expected [{string.Join(", ", expected.Select(x => x.ToString("F4")))}], " +
            $"observed [{string.Join(", ", actual.Select(x => x.ToString("F4")))}]");
    }

    [TestMethod]
    public void GreedyIsArgmaxWithTheLowestIdOnTies()
    {
        float[] logits = [1f, 3f, -2f, 3f, 2.5f];
        Assert.AreEqual(1, Sampler.ArgMax(logits));
        Assert.AreEqual(1, Sample(new GenerationOptions { DoSample = false }, logits));
        Assert.AreEqual(1, Sample(new GenerationOptions { DoSample = true, Temperature = 0 }, logits), "temperature 0 means greedy");
        Assert.AreEqual(4, Sampler.ArgMax([float.NegativeInfinity, -5f, -7f, float.NegativeInfinity, -1f]));
    }

    [TestMethod]
    public void TopKOneAndTinyTopPEqualGreedy()
    {
        for (ulong row = 0; row < 20; row++)
        {
            var logits = RandomLogits(1000, row);
            var greedy = Sampler.ArgMax(logits);
            var topK = new Sampler(new GenerationOptions { TopK = 1, TopP = 1, Seed = row });
            var topP = new Sampler(new GenerationOptions { TopK = 0, TopP = 1e-6, Seed = row });
            var scratch = new float[Sampler.ScratchLength(logits.Length)];
            for (var draw = 0; draw < 10; draw++)
            {
                Assert.AreEqual(greedy, topK.Sample(logits, [], scratch), $"top-k 1, row {row}");
                Assert.AreEqual(greedy, topP.Sample(logits, [], scratch), $"top-p 1e-6, row {row}");
            }
        }
    }

    [TestMethod]
    public void SampledFrequenciesMatchSoftmaxOfLogitsOverTemperature()
    {
        float[] logits = [2.0f, 1.0f, 0.5f, -1.0f, 0.0f, 1.5f];
        foreach (var temperature in new[] { 1.0, 0.7, 2.0 })
        {
            var sampler = new Sampler(new GenerationOptions { Temperature = temperature, TopK = 0, TopP = 1, Seed = 7 });
            // 100,000 draws: the standard error of each frequency is below 0.0016, so 0.008 is five of them.
            AssertClose(Softmax(logits, temperature), Frequencies(sampler, logits, 100_000), 0.008, $"T={temperature}");
        }
    }

    [TestMethod]
    public void TopKRenormalisesOverTheKLargest()
    {
        float[] logits = [0.1f, 2.0f, 1.0f, -3.0f, 1.5f, 0.3f];
        var sampler = new Sampler(new GenerationOptions { TopK = 3, TopP = 1, Seed = 11 });
        var kept = Softmax([2.0f, 1.0f, 1.5f], 1.0);
        AssertClose([0, kept[0], kept[1], 0, kept[2], 0], Frequencies(sampler, logits, 60_000), 0.008, "top-k 3");
    }

    [TestMethod]
    public void TopKKeepsTokensTiedWithTheKth()
    {
        float[] logits = [1f, 3f, 2f, 2f, 0f];
        var frequencies = Frequencies(new Sampler(new GenerationOptions { TopK = 2, TopP = 1, Seed = 5 }), logits, 30_000);
        Assert.IsGreaterThan(0.05, frequencies[2], "tied with the 2nd largest: kept");
        Assert.IsGreaterThan(0.05, frequencies[3], "tied with the 2nd largest: kept");
        Assert.AreEqual(0, frequencies[0] + frequencies[4]);
    }

    [TestMethod]
    public void TopPKeepsTheSmallestSetReachingP()
    {
        // Probabilities 0.5, 0.3, 0.15, 0.05 (in a shuffled order of ids).
        float[] logits = [MathF.Log(0.15f), MathF.Log(0.5f), MathF.Log(0.05f), MathF.Log(0.3f)];
        var p75 = Frequencies(new Sampler(new GenerationOptions { TopK = 0, TopP = 0.75, Seed = 3 }), logits, 60_000);
        AssertClose([0, 0.5 / 0.8, 0, 0.3 / 0.8], p75, 0.008, "top-p 0.75 keeps 0.5 + 0.3");
        var p85 = Frequencies(new Sampler(new GenerationOptions { TopK = 0, TopP = 0.85, Seed = 3 }), logits, 60_000);
        AssertClose([0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95], p85, 0.008, "top-p 0.85 keeps 0.5 + 0.3 + 0.15");
    }

    [TestMethod]
    public void TopPOverAFullVocabularyKeepsExactlyTheNucleus()
    {
        // A flat-ish 50257-token row whose nucleus spans several selection chunks (64, 256, ...).
        var logits = RandomLogits(50257, 99, scale: 1.0);
        const double p = 0.02;
        var order = Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).ToArray();
        var probabilities = Softmax(logits, 1.0);
        var nucleus = new HashSet<int>();
        var mass = 0.0;
        foreach (var id in order)
        {
            nucleus.Add(id);
            mass += probabilities[id];
            if (mass >= p)
            {
                break;
            }
        }

        Assert.IsGreaterThan(300, nucleus.Count, "the nucleus must need more than the first chunks");
        var sampler = new Sampler(new GenerationOptions { TopK = 0, TopP = p, Seed = 1 });
        var scratch = new float[Sampler.ScratchLength(logits.Length)];
        var seen = new HashSet<int>();
        for (var i = 0; i < 400; i++)
        {
            var id = sampler.Sample(logits, [], scratch);
            Assert.Contains(id, nucleus, $"draw {i} picked {id}, outside the nucleus of {nucleus.Count}");
            seen.Add(id);
        }

        Assert.IsGreaterThan(nucleus.Count / 2, seen.Count, "draws spread over the nucleus");
    }

    [TestMethod]
    [DataRow(300, 0.02)]
    [DataRow(300, 0.9)]
    [DataRow(50257, 0.02)]
    [DataRow(50257, 0.5)]
    [DataRow(50257, 0.9)]
    [DataRow(50257, 0.999)]
    public void KeepNucleusKeepsTheSameSetAsAFullSort(int vocabulary, double p)
    {
        // Sizes on both sides of the sort/histogram switch; flat and peaked rows.
        foreach (var scale in new[] { 1.0, 8.0 })
        {
            var logits = RandomLogits(vocabulary, (ulong)vocabulary + 7, scale);
            var max = logits.Max();
            var probabilities = logits.Select(x => MathF.Exp(x - max)).ToArray();
            var total = probabilities.Sum(x => (double)x);
            var expected = new HashSet<int>();
            var mass = 0.0;
            foreach (var id in Enumerable.Range(0, vocabulary).OrderByDescending(i => probabilities[i]))
            {
                expected.Add(id);
                mass += probabilities[id];
                if (mass >= p * total)
                {
                    break;
                }
            }

            var candidates = Enumerable.Range(0, vocabulary).ToArray();
            var kept = Sampler.KeepNucleus(probabilities, candidates, new float[vocabulary], p * total);
            Assert.AreEqual(expected.Count, kept, $"scale {scale}: nucleus size");
            Assert.IsTrue(expected.SetEquals(candidates[..kept]), $"scale {scale}: nucleus members");
            CollectionAssert.AreEquivalent(Enumerable.Range(0, vocabulary).ToArray(), candidates, "a permutation");
        }
    }

    [TestMethod]
    public void KeepTopKKeepsExactlyTheValuesAtLeastTheKthLargestInIdOrder()
    {
        var random = new DeterministicRandom(17);
        foreach (var n in new[] { 1, 2, 7, 100, 5000 })
        {
            // Few distinct values: many ties with the k-th. Ascending values: the heap's worst case.
            var few = Enumerable.Range(0, n).Select(_ => (float)(random.NextUInt64() % 13)).ToArray();
            var ascending = Enumerable.Range(0, n).Select(i => (float)i).ToArray();
            foreach (var values in new[] { few, ascending })
            {
                foreach (var k in new[] { 1, n / 3 + 1, n })
                {
                    var candidates = Enumerable.Range(0, n).ToArray();
                    var kept = Sampler.KeepTopK(values, candidates, new int[n], k);
                    var threshold = values.OrderByDescending(x => x).ElementAt(k - 1);
                    var expected = Enumerable.Range(0, n).Where(i => values[i] >= threshold).ToArray();
                    CollectionAssert.AreEqual(expected, candidates[..kept], $"n={n} k={k}");
                }
            }
        }
    }

    [TestMethod]
    public void SameSeedSameTokensDifferentSeedDifferentTokens()
    {
        var logits = RandomLogits(2000, 5, scale: 1.0);
        int[] Run(ulong seed)
        {
            var sampler = new Sampler(new GenerationOptions { Seed = seed, TopK = 0, TopP = 0.95, Temperature = 1.3 });
            var scratch = new float[Sampler.ScratchLength(logits.Length)];
            return [.. Enumerable.Range(0, 50).Select(_ => sampler.Sample(logits, [], scratch))];
        }

        CollectionAssert.AreEqual(Run(42), Run(42));
        CollectionAssert.AreNotEqual(Run(42), Run(43));
        var unseeded = new Sampler(new GenerationOptions());
        Assert.AreEqual(unseeded.Seed, new Sampler(new GenerationOptions { Seed = unseeded.Seed }).Seed, "a random seed is reported so the run can be repeated");
    }

    [TestMethod]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOnce()
    {
        float[] logits = [2f, -2f, 1f, 0.5f, 0f];
        var work = (float[])logits.Clone();
        Sampler.ApplyRepetitionPenalty(logits, [0, 1, 1, 4, 0], work, 2f);
        // Hand-computed: 2 / 2 = 1; -2 * 2 = -4 (once, although token 1 appears twice); 0 / 2 = 0; unseen unchanged.
        CollectionAssert.AreEqual(new[] { 1f, -4f, 1f, 0.5f, 0f }, work);

        // Through the sampler: without the penalty token 0 wins, with it token 2 does.
        float[] row = [2f, -2f, 1.5f];
        Assert.AreEqual(0, Sample(new GenerationOptions { DoSample = false }, row, [0]));
        Assert.AreEqual(2, Sample(new GenerationOptions { DoSample = false, RepetitionPenalty = 2 }, row, [0]));
    }

    [TestMethod]
    public void SamplingA50257TokenRowAllocatesNothing()
    {
        var logits = RandomLogits(50257, 3);
        var previous = Enumerable.Range(0, 200).Select(i => i * 97 % 50257).ToArray();
        var scratch = new float[Sampler.ScratchLength(logits.Length)];
        foreach (var options in new[]
                 {
                     new GenerationOptions { Seed = 1, Temperature = 0.8, TopK = 50, TopP = 0.9, RepetitionPenalty = 1.2 },
                     new GenerationOptions { Seed = 2, Temperature = 1.0, TopK = 0, TopP = 0.5 },
                     new GenerationOptions { Seed = 3, TopK = 0, TopP = 1 },
                     new GenerationOptions { DoSample = false, RepetitionPenalty = 1.3 },
                 })
        {
            var sampler = new Sampler(options);
            for (var i = 0; i < 3; i++)
            {
                sampler.Sample(logits, previous, scratch);
            }

            // Steady state: the fewest bytes any of three windows of 20 tokens allocated. A one-time allocation by the
            // runtime itself (tiered JIT promoting a hot method mid-window) can land in one window; a per-token
            // allocation shows in all of them.
            long allocated = long.MaxValue;
            var elapsed = TimeSpan.MaxValue;
            for (var window = 0; window < 3; window++)
            {
                var before = GC.GetAllocatedBytesForCurrentThread();
                var start = System.Diagnostics.Stopwatch.GetTimestamp();
                for (var i = 0; i < 20; i++)
                {
                    sampler.Sample(logits, previous, scratch);
                }

                var time = System.Diagnostics.Stopwatch.GetElapsedTime(start);
                elapsed = time < elapsed ? time : elapsed;
                allocated = Math.Min(allocated, GC.GetAllocatedBytesForCurrentThread() - before);
            }

            var what = $"top-k {options.TopK}, top-p {options.TopP}, greedy {options.IsGreedy}";
            Assert.AreEqual(0L, allocated, what);
            Console.WriteLine($"{what}: {elapsed.TotalMilliseconds / 20:F3} ms per token");
        }
    }

    [TestMethod]
    public void BadRowsAreReportedClearly()
    {
        var sampler = new Sampler(new GenerationOptions { Seed = 1 });
        var nan = Assert.ThrowsExactly<OnnxGptException>(() => sampler.Sample([0f, float.NaN, 1f], [], new float[9]));
        StringAssert.Contains(nan.Message, "Logit 1");
        StringAssert.Contains(nan.Message, "NaN");

        var masked = Assert.ThrowsExactly<OnnxGptException>(() => sampler.Sample([float.NegativeInfinity, float.NegativeInfinity], [], new float[6]));
        StringAssert.Contains(masked.Message, "-infinity");

        var scratch = Assert.ThrowsExactly<ArgumentException>(() => sampler.Sample([0f, 1f, 2f], [], new float[8]));
        StringAssert.Contains(scratch.Message, "at least 9");

        var previous = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            new Sampler(new GenerationOptions { RepetitionPenalty = 1.1 }).Sample([0f, 1f], [2], new float[6]));
        StringAssert.Contains(previous.Message, "Previous token 2");

        Assert.ThrowsExactly<ArgumentException>(() => sampler.Sample([], [], new float[3]));
    }

    [TestMethod]
    public void MaskedTokensAreNeverSampled()
    {
        float[] logits = [float.NegativeInfinity, 0f, float.NegativeInfinity, 0f];
        var frequencies = Frequencies(new Sampler(new GenerationOptions { TopK = 0, Seed = 9 }), logits, 10_000);
        Assert.AreEqual(0, frequencies[0] + frequencies[2]);
        AssertClose([0, 0.5, 0, 0.5], frequencies, 0.03, "two equal survivors");
    }
}

using OnnxGpt.Contracts;

namespace OnnxGpt.Tests.Exporter.Checkpoints;

[TestClass]
public sealed class DeterministicRandomTests
{
    [TestMethod]
    [DataRow(0UL, 0x99ec5f36cb75f2b4UL, 0xbf6e1f784956452aUL, 0x1a5f849d4933e6e0UL, 0x6aa594f1262d2d2cUL)]
    [DataRow(42UL, 0x15780b2e0c2ec716UL, 0x6104d9866d113a7eUL, 0xae17533239e499a1UL, 0xecb8ad4703b360a1UL)]
    public void MatchesAnIndependentImplementationOfSplitMix64AndXoshiro256StarStar(ulong seed, ulong a, ulong b, ulong c, ulong d)
    {
        // Expected values from a separate Python transcription of the published algorithms.
        var random = new DeterministicRandom(seed);
        CollectionAssert.AreEqual(new[] { a, b, c, d }, Enumerable.Range(0, 4).Select(_ => random.NextUInt64()).ToArray());
    }

    [TestMethod]
    [DataRow("", 0xcbf29ce484222325UL)]
    [DataRow("a", 0xaf63dc4c8601ec8cUL)]
    [DataRow("foobar", 0x85944171f73967e8UL)]
    public void Fnv1aMatchesThePublishedTestVectors(string text, ulong expected)
    {
        Assert.AreEqual(expected, DeterministicRandom.Fnv1a64(text));
    }

    [TestMethod]
    public void StreamsAreFixedByTheirSeedNameAndIndex()
    {
        // Same Python transcription: Mix(Mix(Mix(7) ^ fnv1a("transformer.wte.weight")) ^ 3) seeds the generator.
        var stream = DeterministicRandom.ForStream(7, "transformer.wte.weight", 3);
        Assert.AreEqual(0xa9ac4061a083ddd7UL, stream.NextUInt64());
        Assert.AreEqual(0x0ade8a8ddae0561aUL, stream.NextUInt64());

        ulong First(ulong seed, string name, ulong index) => DeterministicRandom.ForStream(seed, name, index).NextUInt64();
        var firsts = new[] { First(7, "a", 0), First(7, "b", 0), First(8, "a", 0), First(7, "a", 1), First(7, "", 0) };
        Assert.AreEqual(firsts.Length, firsts.Distinct().Count(), "seed, name and index each change the stream");
        Assert.AreEqual(First(7, "a", 0), First(7, "a", 0));
    }

    [TestMethod]
    public void DeterministicLogAgreesWithMathLogToAFewUlps()
    {
        Assert.AreEqual(0.0, DeterministicMath.Log(1.0));
        Assert.AreEqual(double.NegativeInfinity, DeterministicMath.Log(0.0));
        Assert.IsTrue(double.IsNaN(DeterministicMath.Log(-1.0)));
        Assert.IsTrue(double.IsNaN(DeterministicMath.Log(double.NaN)));
        Assert.AreEqual(double.PositiveInfinity, DeterministicMath.Log(double.PositiveInfinity));

        var random = new DeterministicRandom(11);
        double worst = 0;
        var samples = new List<double> { double.Epsilon, 2.2250738585072014E-308, double.MaxValue, 0.5, 2, Math.E, 1 - 1e-16, 1 + 2.220446049250313e-16 };
        for (int i = 0; i < 20_000; i++)
        {
            samples.Add(random.NextDouble());                                        // the polar method's range
            samples.Add(Math.Pow(2, random.NextInt(2000) - 1000) * (1 + random.NextDouble()));
        }

        foreach (double x in samples.Where(x => x > 0))
        {
            double expected = Math.Log(x), actual = DeterministicMath.Log(x);
            double error = Math.Abs(actual - expected) / Math.Max(Math.Abs(expected), 1e-300);
            if (expected == 0)
            {
                error = Math.Abs(actual);
            }

            worst = Math.Max(worst, error);
        }

        Assert.IsLessThan(1e-15, worst, $"worst relative error {worst:E3}");
    }

    [TestMethod]
    public void NormalSamplesHaveTheRightMoments()
    {
        var random = new DeterministicRandom(2024);
        const int n = 400_000;
        double sum = 0, sum2 = 0, sum4 = 0;
        int withinOne = 0;
        for (int i = 0; i < n; i++)
        {
            double z = random.NextNormal();
            sum += z;
            sum2 += z * z;
            sum4 += z * z * z * z;
            withinOne += Math.Abs(z) < 1 ? 1 : 0;
        }

        double mean = sum / n, variance = sum2 / n - mean * mean;
        Assert.AreEqual(0, mean, 5.0 / Math.Sqrt(n), "mean");
        Assert.AreEqual(1, variance, 0.01, "variance");
        Assert.AreEqual(3, sum4 / n, 0.05, "kurtosis");
        Assert.AreEqual(0.6827, (double)withinOne / n, 0.004, "share within one sigma");
    }

    [TestMethod]
    public void FillNormalIsTheSameSequenceAsNextNormal()
    {
        // FillNormal has its own fast loop; odd lengths leave a spare that the next call must use first.
        var fast = new DeterministicRandom(8);
        var slow = new DeterministicRandom(8);
        var filled = new float[7 + 1 + 4 + 3];
        fast.FillNormal(filled.AsSpan(0, 7), 0.5, 2);
        fast.FillNormal(filled.AsSpan(7, 1), 0.5, 2);
        fast.FillNormal(filled.AsSpan(8, 0), 0.5, 2);
        fast.FillNormal(filled.AsSpan(8, 4), 0.5, 2);
        double next = fast.NextNormal();
        fast.FillNormal(filled.AsSpan(12, 3), 0.5, 2);

        var expected = new float[filled.Length];
        for (int i = 0; i < expected.Length; i++)
        {
            if (i == 12)
            {
                Assert.AreEqual(slow.NextNormal(), next);
            }

            expected[i] = (float)(0.5 + 2 * slow.NextNormal());
        }

        CollectionAssert.AreEqual(expected, filled);
        Assert.AreEqual(slow.NextUInt64(), fast.NextUInt64(), "both left in the same state");
    }

    [TestMethod]
    public void UniformDrawsStayInRangeAndCoverIt()
    {
        var random = new DeterministicRandom(3);
        var counts = new int[7];
        for (int i = 0; i < 70_000; i++)
        {
            counts[random.NextInt(7)]++;
            double d = random.NextDouble();
            float f = random.NextSingle();
            Assert.IsTrue(d is >= 0 and < 1 && f is >= 0 and < 1);
        }

        foreach (int c in counts)
        {
            Assert.AreEqual(10_000, c, 500);
        }

        Assert.AreEqual(0, new DeterministicRandom(1).NextInt(1));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => random.NextInt(0));
    }

    [TestMethod]
    public void ShuffleIsADeterministicPermutation()
    {
        int[] Shuffled(ulong seed)
        {
            var items = Enumerable.Range(0, 50).ToArray();
            new DeterministicRandom(seed).Shuffle<int>(items);
            return items;
        }

        var a = Shuffled(5);
        CollectionAssert.AreEqual(a, Shuffled(5));
        CollectionAssert.AreNotEqual(a, Shuffled(6));
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 50).ToArray(), a);
        CollectionAssert.AreNotEqual(Enumerable.Range(0, 50).ToArray(), a);
    }
}

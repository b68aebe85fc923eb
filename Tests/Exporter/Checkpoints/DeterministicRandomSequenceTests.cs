using OnnxGpt.Contracts;

namespace OnnxGpt.Tests.Exporter.Checkpoints;

[TestClass]
public sealed class DeterministicRandomSequenceTests
{
    [TestMethod]
    public void SplitMix64MatchesItsPublishedFirstOutput()
    {
        var state = 0UL;
        Assert.AreEqual(0xE220A8397B1DCDAFUL, DeterministicRandom.SplitMix64(ref state));
        Assert.AreEqual(0x6E789E6AA1B965F4UL, DeterministicRandom.SplitMix64(ref state));
    }

    [TestMethod]
    [DataRow(0UL, new[] { 0x99EC5F36CB75F2B4UL, 0xBF6E1F784956452AUL, 0x1A5F849D4933E6E0UL, 0x6AA594F1262D2D2CUL, 0xBBA5AD4A1F842E59UL })]
    [DataRow(42UL, new[] { 0x15780B2E0C2EC716UL, 0x6104D9866D113A7EUL, 0xAE17533239E499A1UL, 0xECB8AD4703B360A1UL, 0xFDE6DC7FE2EC5E64UL })]
    public void SequenceIsPinnedForEverySeed(ulong seed, ulong[] expected)
    {
        // Pinned values: changing the generator changes every seeded run, so it must be a deliberate decision.
        var random = new DeterministicRandom(seed);
        CollectionAssert.AreEqual(expected, expected.Select(_ => random.NextUInt64()).ToArray());
    }

    [TestMethod]
    public void NextDoubleIsUniformInTheUnitInterval()
    {
        var random = new DeterministicRandom(1);
        var buckets = new int[10];
        for (var i = 0; i < 100_000; i++)
        {
            var x = random.NextDouble();
            Assert.IsTrue(x is >= 0 and < 1, $"draw {i}: {x}");
            buckets[(int)(x * 10)]++;
        }

        Assert.IsTrue(buckets.All(b => Math.Abs(b - 10_000) < 500), string.Join(", ", buckets));
    }
}

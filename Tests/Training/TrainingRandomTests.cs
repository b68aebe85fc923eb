using OnnxGpt.Training;

namespace OnnxGpt.Tests.Training;

[TestClass]
public sealed class TrainingRandomTests
{
    [TestMethod]
    public void MatchesXoshiro256StarStarSeededBySplitMix64()
    {
        // Reference values from an independent implementation of SplitMix64 seeding and xoshiro256** (seed 42).
        var r = new TrainingRandom(42);
        Assert.AreEqual(1546998764402558742UL, r.NextUInt64());
        Assert.AreEqual(6990951692964543102UL, r.NextUInt64());
        Assert.AreEqual(12544586762248559009UL, r.NextUInt64());
    }

    [TestMethod]
    public void StateRestoresTheSequence()
    {
        var r = new TrainingRandom(1);
        r.NextUInt64();
        var copy = TrainingRandom.FromState(r.GetState());
        for (int i = 0; i < 5; i++)
        {
            Assert.AreEqual(r.NextUInt64(), copy.NextUInt64());
        }
    }

    [TestMethod]
    public void NextIntStaysInRangeAndCoversIt()
    {
        var r = new TrainingRandom(2);
        var seen = new int[7];
        for (int i = 0; i < 7000; i++)
        {
            seen[r.NextInt(7)]++;
        }

        Assert.IsTrue(seen.All(c => c is > 850 and < 1150), string.Join(", ", seen));
    }

    [TestMethod]
    public void AllZeroStateIsRejected()
    {
        Assert.ThrowsExactly<ArgumentException>(() => TrainingRandom.FromState([0, 0, 0, 0]));
    }
}

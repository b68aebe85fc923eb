using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Tests.Exporter.Checkpoints;

[TestClass]
public sealed class SeededInitTests
{
    private static ulong Checksum(GptWeights w)
    {
        // FNV-1a over the float bits of every tensor in canonical order.
        ulong hash = 0xCBF2_9CE4_8422_2325UL;
        foreach (var name in w.Names)
        {
            foreach (float v in w[name].Data)
            {
                uint bits = BitConverter.SingleToUInt32Bits(v);
                for (int k = 0; k < 4; k++)
                {
                    hash ^= (bits >> (8 * k)) & 0xFF;
                    hash *= 0x0000_0100_0000_01B3UL;
                }
            }
        }

        return hash;
    }

    [TestMethod]
    public void PinnedValuesGuardCrossVersionStability()
    {
        // Computed once with this implementation and written in by hand. If this fails, seeded models no longer
        // reproduce across versions or machines: the generator, the normal transform, the stream mixing or the
        // chunking changed. Only update the numbers for a deliberate, announced change.
        // The four wte values were also reproduced by a separate Python transcription of the documented algorithm
        // (SplitMix64 + xoshiro256**, FNV-1a stream mixing, polar method with the C library's log).
        var w = SeededInit.Create(GptPresets.Get("nano"), 1234);
        CollectionAssert.AreEqual(
            new uint[] { 3169644014, 1007051665, 1019802779, 3156448848 },
            w[TensorNames.Wte].Data.Take(4).Select(BitConverter.SingleToUInt32Bits).ToArray(),
            string.Join(", ", w[TensorNames.Wte].Data.Take(4).Select(BitConverter.SingleToUInt32Bits)));
        Assert.AreEqual(0xc0637bab44474c51UL, Checksum(w), $"0x{Checksum(w):x16}");
    }

    [TestMethod]
    public void SameSeedGivesTheSameBytesAndAnotherSeedDoesNot()
    {
        var config = GptPresets.Get("nano") with { TiedHead = false };
        var a = SeededInit.Create(config, 77);
        var b = SeededInit.Create(config, 77);
        var c = SeededInit.Create(config, 78);
        Assert.AreEqual(Checksum(a), Checksum(b));
        foreach (var name in a.Names)
        {
            CollectionAssert.AreEqual(a[name].Data, b[name].Data, name);
            if (a[name].Rank == 2)
            {
                CollectionAssert.AreNotEqual(a[name].Data, c[name].Data, name);
            }
        }

        CollectionAssert.AreNotEqual(a[TensorNames.Wte].Data, a[TensorNames.LmHead].Data, "an untied head has its own stream");
    }

    [TestMethod]
    public void ResultDoesNotDependOnParallelism()
    {
        // wte has 1.28M values: more than one chunk, so chunks really run on different threads.
        var config = new GptConfig { VocabSize = 5000, ContextLength = 8, Width = 256, Layers = 1, Heads = 4, InnerWidth = 8 };
        Assert.IsGreaterThan(SeededInit.ChunkElements, config.VocabSize * config.Width);
        var serial = SeededInit.Create(config, 9, 0.02, maxDegreeOfParallelism: 1);
        var parallel = SeededInit.Create(config, 9);
        foreach (var name in serial.Names)
        {
            CollectionAssert.AreEqual(serial[name].Data, parallel[name].Data, name);
        }

        // The second chunk is not a copy of the first.
        var wte = serial[TensorNames.Wte].Data;
        CollectionAssert.AreNotEqual(wte[..16], wte[SeededInit.ChunkElements..(SeededInit.ChunkElements + 16)]);
    }

    [TestMethod]
    public void FollowsGpt2sInitialisationScheme()
    {
        var config = GptPresets.Get("tiny") with { TiedHead = false }; // 2 layers: residual std 0.02 / sqrt(4) = 0.01
        var w = SeededInit.Create(config, 2);
        double residual = 0.02 / Math.Sqrt(2 * config.Layers);
        foreach (var name in w.Names)
        {
            var data = w[name].Data;
            if (w[name].Rank == 1)
            {
                float expected = name.EndsWith(".weight", StringComparison.Ordinal) ? 1f : 0f;
                Assert.IsTrue(data.All(v => v == expected), $"{name} should be all {expected}");
                continue;
            }

            double std = name.EndsWith("c_proj.weight", StringComparison.Ordinal) ? residual : 0.02;
            double mean = data.Average(v => (double)v);
            double sampleStd = Math.Sqrt(data.Average(v => ((double)v - mean) * ((double)v - mean)));
            // Tolerances: about 5 standard errors of each estimate for this many values.
            Assert.AreEqual(0, mean, 5 * std / Math.Sqrt(data.Length), $"{name} mean");
            Assert.AreEqual(std, sampleStd, 5 * std / Math.Sqrt(2.0 * data.Length), $"{name} std");
        }

        Assert.IsTrue(w.Names.Contains(TensorNames.LmHead));
    }

    [TestMethod]
    public void ConfigsWithoutBiasGetNoBiasTensors()
    {
        var w = SeededInit.Create(GptPresets.Get("nano") with { Bias = false }, 1);
        Assert.IsFalse(w.Names.Any(n => n.EndsWith(".bias", StringComparison.Ordinal)));
        Assert.IsTrue(w["transformer.ln_f.weight"].Data.All(v => v == 1f));
    }

    [TestMethod]
    public void InitializerRangeScalesEverything()
    {
        var config = GptPresets.Get("nano");
        var a = SeededInit.Create(config, 3, 0.02);
        var b = SeededInit.Create(config, 3, 0.04);
        Assert.AreEqual(2 * (double)a[TensorNames.Wte].Data[5], b[TensorNames.Wte].Data[5], 1e-9);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SeededInit.Create(config, 3, double.NaN));
    }
}

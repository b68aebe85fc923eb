using System.Buffers.Binary;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Exporter.Checkpoints;

/// <summary>llama2.c's checkpoint format: the shipped stories260K, and every way a file can be wrong.</summary>
[TestClass]
public sealed class Llama2cCheckpointTests
{
    [TestMethod]
    public void Stories260KHasTheShapesItsReadmeGives()
    {
        var c = Stories260K.Weights.Config;
        Assert.AreEqual(ModelFamily.Llama, c.Family);
        Assert.AreEqual((64, 172, 5, 8, 4, 512, 512), (c.Width, c.FeedForwardWidth, c.Layers, c.Heads, c.KvHeads, c.VocabSize, c.ContextLength));
        Assert.IsTrue(c.TiedHead, "a positive vocab_size: the classifier is the token embedding");
        Assert.IsTrue(c.RotaryInterleaved, "llama2.c rotates interleaved pairs");
        Assert.AreEqual(8, c.HeadSize);
        Assert.AreEqual(1e-5, c.LayerNormEpsilon);
        // 512·64 + 5·(64 + 64·64 + 2·32·64 + 64·64 + 64 + 3·64·172) + 64, the rotary tables not counted.
        Assert.AreEqual(260_032, c.ParameterCount);
        Assert.AreEqual(c.ParameterCount, Stories260K.Weights.Names.Sum(n => Stories260K.Weights[n].Length));

        // The first values of the file after the header are the embedding's; the last tensor is the final norm.
        var file = File.ReadAllBytes(Stories260K.Checkpoint);
        Assert.AreEqual(BinaryPrimitives.ReadSingleLittleEndian(file.AsSpan(Llama2cCheckpoint.HeaderBytes)), Stories260K.Weights[LlamaTensorNames.Embedding].Data[0]);
        int finalNormAt = file.Length - (512 * 8 + 64) * 4;
        Assert.AreEqual(BinaryPrimitives.ReadSingleLittleEndian(file.AsSpan(finalNormAt)), Stories260K.Weights[LlamaTensorNames.FinalNorm].Data[0]);
    }

    [TestMethod]
    public void UntiedClassifierIsReadFromTheEnd()
    {
        using var tmp = TestPaths.NewTemp();
        var tied = File.ReadAllBytes(Stories260K.Checkpoint);
        var classifier = new float[512 * 64];
        for (int i = 0; i < classifier.Length; i++)
        {
            classifier[i] = i * 1e-4f;
        }

        var bytes = tied.Concat(System.Runtime.InteropServices.MemoryMarshal.AsBytes(classifier.AsSpan()).ToArray()).ToArray();
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(20), -512);
        var weights = Llama2cCheckpoint.Load(tmp.Write("untied.bin", bytes));
        Assert.IsFalse(weights.Config.TiedHead);
        CollectionAssert.AreEqual(classifier, weights[LlamaTensorNames.LmHead].Data);
    }

    [TestMethod]
    public void TruncatedFileIsRefusedWithBothSizes()
    {
        using var tmp = TestPaths.NewTemp();
        var bytes = File.ReadAllBytes(Stories260K.Checkpoint);
        string path = tmp.Write("cut.bin", bytes[..^100]);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => Llama2cCheckpoint.Load(path));
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, $"implies {bytes.Length} bytes");
        StringAssert.Contains(e.Message, $"has {bytes.Length - 100}");
        StringAssert.Contains(e.Message, "truncated");
    }

    [TestMethod]
    public void SizesThatDoNotMatchTheFileAreRefusedBeforeAllocating()
    {
        using var tmp = TestPaths.NewTemp();
        var bytes = File.ReadAllBytes(Stories260K.Checkpoint);
        var bigger = bytes.ToArray();
        BinaryPrimitives.WriteInt32LittleEndian(bigger.AsSpan(0), 4096);          // dim 4096 in a 1 MB file
        var e = Assert.ThrowsExactly<OnnxGptException>(() => Llama2cCheckpoint.Load(tmp.Write("big.bin", bigger)));
        StringAssert.Contains(e.Message, "dim 4096");
        StringAssert.Contains(e.Message, "truncated");

        var huge = bytes.ToArray();
        BinaryPrimitives.WriteInt32LittleEndian(huge.AsSpan(8), int.MaxValue);   // n_layers 2^31 - 1: sizes overflow
        e = Assert.ThrowsExactly<OnnxGptException>(() => Llama2cCheckpoint.Load(tmp.Write("huge.bin", huge)));
        StringAssert.Contains(e.Message, "huge.bin");

        var longer = bytes.Concat(new byte[12]).ToArray();
        e = Assert.ThrowsExactly<OnnxGptException>(() => Llama2cCheckpoint.Load(tmp.Write("long.bin", longer)));
        StringAssert.Contains(e.Message, "data the format does not describe");
    }

    [TestMethod]
    [DataRow(16, 3, "num_key_value_heads 3 must be positive and divide num_attention_heads 8")]
    [DataRow(0, 0, "header field dim is 0")]
    [DataRow(12, -2, "header field n_heads is -2")]
    [DataRow(20, 0, "header field vocab_size is 0")]
    public void BadHeaderFieldsAreNamed(int offset, int value, string expected)
    {
        using var tmp = TestPaths.NewTemp();
        var bytes = File.ReadAllBytes(Stories260K.Checkpoint);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(offset), value);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => Llama2cCheckpoint.Load(tmp.Write("bad.bin", bytes)));
        StringAssert.Contains(e.Message, expected);
        StringAssert.Contains(e.Message, "bad.bin");
    }

    [TestMethod]
    public void ShortAndVersionedFilesAreRefused()
    {
        using var tmp = TestPaths.NewTemp();
        var e = Assert.ThrowsExactly<OnnxGptException>(() => Llama2cCheckpoint.Load(tmp.Write("short.bin", new byte[10])));
        StringAssert.Contains(e.Message, "shorter than llama2.c's 28-byte header");

        var versioned = new byte[256];
        BinaryPrimitives.WriteUInt32LittleEndian(versioned, 0x616b3432);
        BinaryPrimitives.WriteInt32LittleEndian(versioned.AsSpan(4), 2);
        e = Assert.ThrowsExactly<OnnxGptException>(() => Llama2cCheckpoint.Load(tmp.Write("v2.bin", versioned)));
        StringAssert.Contains(e.Message, "export version 2");

        e = Assert.ThrowsExactly<OnnxGptException>(() => Llama2cCheckpoint.Load(tmp.Sub("missing.bin")));
        StringAssert.Contains(e.Message, "missing.bin");
    }
}

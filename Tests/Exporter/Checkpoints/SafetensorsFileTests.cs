using System.Buffers.Binary;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Exporter.Checkpoints;

[TestClass]
public sealed class SafetensorsFileTests
{
    private const string OneTensor = """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""";

    private static OnnxGptException OpenFails(byte[] bytes, string fileName = "broken.safetensors")
    {
        using var temp = new TempFolder();
        string path = temp.Write(fileName, bytes);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => SafetensorsFile.Open(path).Dispose());
        StringAssert.Contains(e.Message, fileName, "the message names the file");
        return e;
    }

    [TestMethod]
    public void ReadsTheTinyRandomGpt2Checkpoint()
    {
        using var file = SafetensorsFile.Open(Path.Combine(TestPaths.TinyRandomGpt2, "model.safetensors"));
        Assert.HasCount(64, file.Entries);
        Assert.AreEqual("pt", file.Metadata["format"]);
        Assert.IsFalse(file.Contains("lm_head.weight"));
        var entry = file.GetEntry("transformer.h.0.attn.c_attn.weight");
        Assert.AreEqual(SafetensorsDType.F32, entry.DType);
        CollectionAssert.AreEqual(new long[] { 32, 96 }, entry.Shape.ToArray());

        // Reference values read from the file with Python's struct module.
        var t = file.ReadTensor("transformer.h.0.attn.c_attn.weight");
        CollectionAssert.AreEqual(new[] { 32, 96 }, t.Shape);
        CollectionAssert.AreEqual(
            new uint[] { 1020379904, 1022315602, 1009354209 },
            t.Data.Take(3).Select(BitConverter.SingleToUInt32Bits).ToArray());
        var wte = file.ReadTensor("transformer.wte.weight");
        Assert.AreEqual(0.07420032310841407, wte.Data.Sum(x => (double)x), 1e-9);
    }

    [TestMethod]
    public void EntriesComeInDataOrderWhateverTheHeaderOrder()
    {
        string header = """{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""";
        using var temp = new TempFolder();
        using var file = SafetensorsFile.Open(temp.Write("x.safetensors", CheckpointTestFiles.Raw(header, CheckpointTestFiles.F32(1f, 2f))));
        CollectionAssert.AreEqual(new[] { "a", "b" }, file.Entries.Select(e => e.Name).ToArray());
        Assert.AreEqual(2f, file.ReadTensor("b").Data[0]);
        Assert.AreEqual("v", file.Metadata["k"]);
    }

    [TestMethod]
    public void ConvertsHalfBFloat16AndDoubleToFloat32()
    {
        var data = new byte[6 + 6 + 16];
        ushort[] f16 = [0x3C00, 0xC000, 0x7C00];   // 1, -2, +inf
        ushort[] bf16 = [0x3F80, 0x4049, 0xFF80];  // 1, 3.140625, -inf
        for (int i = 0; i < 3; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(2 * i), f16[i]);
            BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(6 + 2 * i), bf16[i]);
        }

        BinaryPrimitives.WriteDoubleLittleEndian(data.AsSpan(12), 0.1);
        BinaryPrimitives.WriteDoubleLittleEndian(data.AsSpan(20), -1e300);
        string header = """
            {"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},
             "b":{"dtype":"BF16","shape":[3],"data_offsets":[6,12]},
             "d":{"dtype":"F64","shape":[2,1],"data_offsets":[12,28]}}
            """;
        using var temp = new TempFolder();
        using var file = SafetensorsFile.Open(temp.Write("x.safetensors", CheckpointTestFiles.Raw(header, data)));
        CollectionAssert.AreEqual(new[] { 1f, -2f, float.PositiveInfinity }, file.ReadTensor("h").Data);
        CollectionAssert.AreEqual(new[] { 1f, 3.140625f, float.NegativeInfinity }, file.ReadTensor("b").Data);
        var d = file.ReadTensor("d");
        CollectionAssert.AreEqual(new[] { 2, 1 }, d.Shape);
        CollectionAssert.AreEqual(new[] { 0.1f, float.NegativeInfinity }, d.Data);
    }

    [TestMethod]
    public void ScalarAndEmptyTensorsAreAllowed()
    {
        string header = """{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"e":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]}}""";
        using var temp = new TempFolder();
        using var file = SafetensorsFile.Open(temp.Write("x.safetensors", CheckpointTestFiles.Raw(header, CheckpointTestFiles.F32(7f))));
        var s = file.ReadTensor("s");
        Assert.AreEqual(0, s.Rank);
        Assert.AreEqual(7f, s.Data[0]);
        Assert.AreEqual(0, file.ReadTensor("e").Length);
    }

    [TestMethod]
    public void HeaderLengthPastTheEndIsRejectedBeforeAllocating()
    {
        // A header length of 2^62 would be an 4 EiB allocation if trusted.
        var e = OpenFails(CheckpointTestFiles.Raw(OneTensor, CheckpointTestFiles.F32(1, 2), headerLength: 1UL << 62));
        StringAssert.Contains(e.Message, $"header length says {1UL << 62} bytes");
        StringAssert.Contains(e.Message, "only");

        e = OpenFails(CheckpointTestFiles.Raw(OneTensor, CheckpointTestFiles.F32(1, 2), headerLength: ulong.MaxValue));
        StringAssert.Contains(e.Message, ulong.MaxValue.ToString());
    }

    [TestMethod]
    public void HeaderLengthOverTheCapIsRejectedEvenWhenTheFileIsThatLong()
    {
        using var temp = new TempFolder();
        string path = temp.Sub("huge.safetensors");
        using (var stream = new FileStream(path, FileMode.CreateNew))
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, 150_000_000);
            stream.Write(prefix);
            stream.SetLength(150_000_100); // sparse on most file systems: nothing is written
        }

        var e = Assert.ThrowsExactly<OnnxGptException>(() => SafetensorsFile.Open(path).Dispose());
        StringAssert.Contains(e.Message, "150000000");
        StringAssert.Contains(e.Message, SafetensorsFile.MaxHeaderBytes.ToString());
    }

    [TestMethod]
    public void FileShorterThanTheLengthPrefixIsRejected()
    {
        var e = OpenFails([1, 2, 3]);
        StringAssert.Contains(e.Message, "3 bytes");
        e = OpenFails([]);
        StringAssert.Contains(e.Message, "0 bytes");
    }

    [TestMethod]
    [DataRow("{not json", "not valid JSON")]
    [DataRow("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}""", "not valid JSON")]
    [DataRow("[1, 2]", "starting with '{'")]
    [DataRow("", "an empty header")]
    [DataRow("""{"a":1}""", "tensor 'a': expected an object")]
    [DataRow("""{"a":{"shape":[2],"data_offsets":[0,8]}}""", "tensor 'a': field 'dtype' is missing")]
    [DataRow("""{"a":{"dtype":"F32","data_offsets":[0,8]}}""", "tensor 'a': field 'shape' is missing")]
    [DataRow("""{"a":{"dtype":"F32","shape":[2]}}""", "tensor 'a': field 'data_offsets' is missing")]
    [DataRow("""{"a":{"dtype":32,"shape":[2],"data_offsets":[0,8]}}""", "field 'dtype' must be a string, found 32")]
    [DataRow("""{"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}""", "field 'shape' must be an array")]
    [DataRow("""{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}""", "found 2.5")]
    [DataRow("""{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""", "found -2")]
    [DataRow("""{"a":{"dtype":"F32","shape":[99999999999,99999999999],"data_offsets":[0,8]}}""", "more elements than")]
    [DataRow("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}""", "field 'data_offsets' must be an array [begin, end]")]
    [DataRow("""{"a":{"dtype":"F32","shape":[2],"data_offsets":["0",8]}}""", "field 'data_offsets' must hold two non-negative integers")]
    [DataRow("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,8]}}""", "field 'data_offsets' must hold two non-negative integers")]
    [DataRow("""{"a":{"dtype":"F128","shape":[2],"data_offsets":[0,8]}}""", "tensor 'a': unknown dtype 'F128'; expected one of F64, F32")]
    [DataRow("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}""", "tensor 'a': data_offsets [0, 16] reach past the 8 data bytes")]
    [DataRow("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}""", "tensor 'a': data_offsets [8, 0] end before they begin")]
    [DataRow("""{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", "shape [3] of F32 needs 12 bytes (3 × 4), but data_offsets [0, 8] hold 8")]
    [DataRow("""{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,8]}}""", "shape [2] of F16 needs 4 bytes")]
    [DataRow("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}""", "tensor 'b' at bytes [2, 6) overlaps tensor 'a' at [0, 4)")]
    [DataRow("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "overlaps")]
    [DataRow("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", "tensor 'a' begins at byte 4, expected 0: a gap of 4 bytes after the start of the data")]
    [DataRow("""{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}""", "a gap of 2 bytes after tensor 'a'")]
    [DataRow("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "4 trailing bytes belong to no tensor")]
    [DataRow("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", "key 'a' appears twice in the object at $; duplicate keys are refused")]
    [DataRow("""{"__metadata__":{"format":1}}""", "'__metadata__' entry 'format' must be a string, found 1")]
    [DataRow("""{"__metadata__":["pt"]}""", "'__metadata__' must be an object of strings")]
    public void BadHeadersNameTheFileTheTensorAndTheProblem(string header, string expected)
    {
        var e = OpenFails(CheckpointTestFiles.Raw(header, CheckpointTestFiles.F32(1, 2)));
        StringAssert.Contains(e.Message, expected);
    }

    [TestMethod]
    public void DeeplyNestedJsonIsRejectedWithoutRecursingIntoIt()
    {
        string header = "{\"a\":" + new string('[', 100_000) + new string(']', 100_000) + "}";
        var e = OpenFails(CheckpointTestFiles.Raw(header));
        StringAssert.Contains(e.Message, "not valid JSON");
    }

    [TestMethod]
    public void InvalidUtf8InTheHeaderIsRejected()
    {
        var bytes = CheckpointTestFiles.Raw("""{"aé":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", CheckpointTestFiles.F32(1, 2));
        int at = Array.IndexOf(bytes, (byte)0xC3);
        bytes[at] = 0xFF; // no longer UTF-8
        var e = OpenFails(bytes);
        StringAssert.Contains(e.Message, "not valid UTF-8 (the first invalid byte is at offset 3)");
    }

    [TestMethod]
    public void TruncatedDataIsRejected()
    {
        var full = CheckpointTestFiles.Raw(OneTensor, CheckpointTestFiles.F32(1, 2));
        var e = OpenFails(full[..^3]);
        StringAssert.Contains(e.Message, "tensor 'a': data_offsets [0, 8] reach past the 5 data bytes the file holds");
        StringAssert.Contains(e.Message, "truncated");
    }

    [TestMethod]
    public void EveryTruncationOrByteFlipFailsCleanly()
    {
        // Cut a valid file at every length, and flip bytes at random: each either opens and reads, or throws
        // OnnxGptException. Anything else (IndexOutOfRange, OverflowException, OutOfMemory) fails the test.
        string header = """{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"h":{"dtype":"F16","shape":[2],"data_offsets":[16,20]}}""";
        var valid = CheckpointTestFiles.Raw(header, new byte[20]);
        using var temp = new TempFolder();
        string path = temp.Sub("f.safetensors");
        int opened = 0, rejected = 0;

        void Try(byte[] bytes)
        {
            File.WriteAllBytes(path, bytes);
            try
            {
                using var file = SafetensorsFile.Open(path);
                foreach (var entry in file.Entries)
                {
                    try
                    {
                        _ = file.ReadTensor(entry.Name);
                    }
                    catch (OnnxGptException)
                    {
                        // e.g. a byte flip turned F32 into I32: fine, as long as it is this exception.
                    }
                }

                opened++;
            }
            catch (OnnxGptException)
            {
                rejected++;
            }
        }

        for (int cut = 0; cut < valid.Length; cut++)
        {
            Try(valid[..cut]);
        }

        Assert.AreEqual(valid.Length, rejected, "every truncation is rejected");
        var random = new DeterministicRandom(7);
        for (int i = 0; i < 300; i++)
        {
            var bytes = (byte[])valid.Clone();
            int flips = 1 + random.NextInt(3);
            for (int f = 0; f < flips; f++)
            {
                bytes[random.NextInt(bytes.Length)] = (byte)random.NextInt(256);
            }

            Try(bytes);
        }

        Assert.IsGreaterThan(0, opened, "some flips land in the data and still open");
    }

    [TestMethod]
    public void ReadingAnUnknownOrNonFloatTensorNamesIt()
    {
        string header = """{"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}""";
        using var temp = new TempFolder();
        using var file = SafetensorsFile.Open(temp.Write("x.safetensors", CheckpointTestFiles.Raw(header, new byte[8])));
        Assert.AreEqual(SafetensorsDType.I64, file.Entries[0].DType);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => file.ReadTensor("ids"));
        StringAssert.Contains(e.Message, "x.safetensors: tensor 'ids' has dtype I64; expected a floating-point dtype");
        e = Assert.ThrowsExactly<OnnxGptException>(() => file.ReadTensor("nope"));
        StringAssert.Contains(e.Message, "has no tensor 'nope'");
    }

    [TestMethod]
    public void MissingFileIsNamed()
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() => SafetensorsFile.Open(Path.Combine(Path.GetTempPath(), "no-such-dir-4711", "m.safetensors")));
        StringAssert.Contains(e.Message, "m.safetensors: safetensors file not found");
    }

    [TestMethod]
    public void ReadAfterDisposeThrows()
    {
        using var temp = new TempFolder();
        var file = SafetensorsFile.Open(temp.Write("x.safetensors", CheckpointTestFiles.Raw(OneTensor, CheckpointTestFiles.F32(1, 2))));
        file.Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(() => file.ReadTensor("a"));
    }
}

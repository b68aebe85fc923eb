using System.Buffers.Binary;
using System.Text;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Exporter.Checkpoints;

[TestClass]
public sealed class SafetensorsWriterTests
{
    private static KeyValuePair<string, Tensor> T(string name, int[] shape, params float[] data) => KeyValuePair.Create(name, new Tensor(shape, data));

    [TestMethod]
    public void WritesTheExactBytesTheFormatSpecifies()
    {
        using var temp = new TempFolder();
        string path = temp.Sub("m.safetensors");
        SafetensorsWriter.Write(path, [T("b", [2], 1f, -2f), T("a", [], 0.5f)], new Dictionary<string, string> { ["format"] = "pt" });

        var bytes = File.ReadAllBytes(path);
        string json = """{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[],"data_offsets":[8,12]}}""";
        int padded = (json.Length + 7) / 8 * 8;
        Assert.AreEqual((ulong)padded, BinaryPrimitives.ReadUInt64LittleEndian(bytes), "header length, padded to a multiple of 8");
        Assert.AreEqual(json + new string(' ', padded - json.Length), Encoding.UTF8.GetString(bytes, 8, padded));
        CollectionAssert.AreEqual(CheckpointTestFiles.F32(1f, -2f, 0.5f), bytes[(8 + padded)..]);
        Assert.AreEqual(1, Directory.GetFiles(temp.Path).Length, "no temporary file is left behind");
    }

    [TestMethod]
    public void RoundTripsFloat32BitsAndMetadata()
    {
        var random = new DeterministicRandom(1);
        var values = new float[3 * 5];
        random.FillNormal(values, 0, 1);
        values[0] = float.NaN;
        values[1] = -0f;
        values[2] = float.Epsilon;
        var tensors = new[] { T("x.weight", [3, 5], values), T("x.bias", [5], 1, 2, 3, 4, 5), T("empty", [0, 4]) };
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode + \"quotes\"" };
        using var temp = new TempFolder();
        string path = temp.Sub("m.safetensors");
        SafetensorsWriter.Write(path, tensors, metadata);

        using var file = SafetensorsFile.Open(path);
        CollectionAssert.AreEqual(new[] { "x.weight", "x.bias", "empty" }, file.Entries.Select(e => e.Name).ToArray(), "order kept");
        CollectionAssert.AreEquivalent(metadata, file.Metadata.ToDictionary());
        foreach (var (name, tensor) in tensors)
        {
            var read = file.ReadTensor(name);
            CollectionAssert.AreEqual(tensor.Shape, read.Shape, name);
            CollectionAssert.AreEqual(
                tensor.Data.Select(BitConverter.SingleToUInt32Bits).ToArray(),
                read.Data.Select(BitConverter.SingleToUInt32Bits).ToArray(), name);
        }
    }

    [TestMethod]
    public void HalfPrecisionStorageRoundsToNearestEven()
    {
        float[] values = [1f, 1.00390625f, 1.01171875f, 65504f, 1e6f, -3.3e-8f, float.NaN, 0.1f];
        using var temp = new TempFolder();
        SafetensorsWriter.Write(temp.Sub("h.safetensors"), [T("v", [values.Length], values)], dtype: SafetensorsDType.F16);
        SafetensorsWriter.Write(temp.Sub("b.safetensors"), [T("v", [values.Length], values)], dtype: SafetensorsDType.BF16);

        using (var h = SafetensorsFile.Open(temp.Sub("h.safetensors")))
        {
            Assert.AreEqual(SafetensorsDType.F16, h.Entries[0].DType);
            Assert.AreEqual(2L * values.Length, h.Entries[0].ByteLength);
            CollectionAssert.AreEqual(values.Select(v => (float)(Half)v).ToArray(), h.ReadTensor("v").Data);
        }

        using var b = SafetensorsFile.Open(temp.Sub("b.safetensors"));
        var read = b.ReadTensor("v").Data;
        Assert.AreEqual(1f, read[0]);
        Assert.AreEqual(1f, read[1], "1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even 1");
        Assert.AreEqual(1.015625f, read[2], "1 + 3·2^-8 is halfway: ties go to the even 1 + 2^-6");
        Assert.AreEqual(65536f, read[3]);
        Assert.IsTrue(float.IsNaN(read[6]), "NaN stays NaN");
        Assert.AreEqual(0.10009765625f, read[7]);
    }

    [TestMethod]
    public void DuplicateOrReservedNamesAreRefused()
    {
        using var temp = new TempFolder();
        string path = temp.Sub("m.safetensors");
        var e = Assert.ThrowsExactly<ArgumentException>(() => SafetensorsWriter.Write(path, [T("a", [1], 1), T("a", [1], 2)]));
        StringAssert.Contains(e.Message, "tensor 'a' is given twice");
        e = Assert.ThrowsExactly<ArgumentException>(() => SafetensorsWriter.Write(path, [T("__metadata__", [1], 1)]));
        StringAssert.Contains(e.Message, "reserved");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SafetensorsWriter.Write(path, [T("a", [1], 1)], dtype: SafetensorsDType.I64));
        Assert.IsFalse(File.Exists(path));
    }

    [TestMethod]
    public void ReplacesAnExistingFileWhole()
    {
        using var temp = new TempFolder();
        string path = temp.Sub("m.safetensors");
        SafetensorsWriter.Write(path, [T("big", [1000], new float[1000])]);
        SafetensorsWriter.Write(path, [T("small", [1], 3f)]);
        using var file = SafetensorsFile.Open(path);
        Assert.AreEqual("small", file.Entries.Single().Name);
        Assert.AreEqual(3f, file.ReadTensor("small").Data[0]);
    }
}

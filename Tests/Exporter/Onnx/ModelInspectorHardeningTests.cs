using Google.Protobuf;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter.Onnx.Proto;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Exporter.Onnx;

/// <summary><c>inspect</c> on hostile models: external data that points out of the folder, lengths and dims that are not numbers.</summary>
[TestClass]
public sealed class ModelInspectorHardeningTests
{
    private static string WriteModel(TempFolder temp, Action<TensorProto> edit)
    {
        var tensor = new TensorProto { Name = "w", DataType = (int)TensorProto.Types.DataType.Float, DataLocation = TensorProto.Types.DataLocation.External };
        tensor.Dims.Add(2);
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = "model.onnx.data" });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = "0" });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = "8" });
        edit(tensor);
        var model = new ModelProto { IrVersion = 8, Graph = new GraphProto { Name = "g" } };
        model.Graph.Initializer.Add(tensor);
        string path = temp.Sub("model.onnx");
        File.WriteAllBytes(path, model.ToByteArray());
        File.WriteAllBytes(temp.Sub("model.onnx.data"), new byte[8]);
        return path;
    }

    private static void SetExternal(TensorProto t, string key, string value) => t.ExternalData.First(e => e.Key == key).Value = value;

    [TestMethod]
    public void AWellFormedExternalModelIsSummarised()
    {
        using var temp = new TempFolder();
        var info = ModelInspector.Open(WriteModel(temp, _ => { }));
        Assert.AreEqual(8, info.ExternalBytes);
        Assert.AreEqual(8, info.ParameterBytes);
        Assert.AreEqual(2, info.ParameterCount);
    }

    [TestMethod]
    [DataRow("../outside.bin", "steps out with '..'")]
    [DataRow("/etc/passwd", "is an absolute path")]
    public void ExternalDataOutsideTheFolderIsRefused(string location, string why)
    {
        using var temp = new TempFolder();
        string path = WriteModel(temp, t => SetExternal(t, "location", location));
        var e = Assert.ThrowsExactly<OnnxGptException>(() => ModelInspector.Open(path));
        StringAssert.Contains(e.Message, $"initializer 'w' external_data location names '{location}', which is refused: the name {why}");
    }

    [TestMethod]
    public void ALinkedExternalDataFileOutsideIsRefused()
    {
        using var temp = new TempFolder();
        using var other = new TempFolder();
        string path = WriteModel(temp, t => SetExternal(t, "location", "weights.bin"));
        File.WriteAllBytes(other.Sub("big.bin"), new byte[100]);
        HostileFiles.Symlink(temp.Sub("weights.bin"), other.Sub("big.bin"));
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => ModelInspector.Open(path)).Message, "a symbolic link takes it to");
    }

    [TestMethod]
    [DataRow("length", "abc", "external_data length 'abc'; expected a non-negative integer")]
    [DataRow("length", "100000000000000000000", "external_data length '100000000000000000000'")]
    [DataRow("offset", "-1", "external_data offset '-1'")]
    public void ExternalNumbersThatAreNotNumbersAreErrors(string key, string value, string expected)
    {
        using var temp = new TempFolder();
        string path = WriteModel(temp, t => SetExternal(t, key, value));
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => ModelInspector.Open(path)).Message, expected);
    }

    [TestMethod]
    public void DimsThatOverflowAreAnError()
    {
        using var temp = new TempFolder();
        string path = WriteModel(temp, t => t.Dims.Add(long.MaxValue));
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => ModelInspector.Open(path)).Message, "whose product overflows a 64-bit count");
        path = WriteModel(temp, t => t.Dims.Add(-3));
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => ModelInspector.Open(path)).Message, "has dimension -3");
    }

    [TestMethod]
    public void AFifoModelFileIsRefused()
    {
        using var temp = new TempFolder();
        HostileFiles.MakeFifo(temp.Sub("model.onnx"));
        var e = HostileFiles.FailsWithin(TimeSpan.FromSeconds(10), () => ModelInspector.Open(temp.Path), "inspect on a FIFO");
        StringAssert.Contains(e.Message, "found a FIFO");
    }
}

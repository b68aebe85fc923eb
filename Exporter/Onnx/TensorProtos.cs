using System.Runtime.InteropServices;
using Google.Protobuf;
using OnnxGpt.Model;
using OnnxGpt.Onnx.Proto;
using DataType = OnnxGpt.Onnx.Proto.TensorProto.Types.DataType;

namespace OnnxGpt.Onnx;

/// <summary>Builds ONNX initializers from float tensors.</summary>
public static class TensorProtos
{
    /// <summary>A float32 initializer whose bytes are stored in the model file (little-endian raw data).</summary>
    public static TensorProto Inline(string name, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var proto = Header(name, tensor.Shape, DataType.Float);
        proto.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(tensor.Data.AsSpan()));
        return proto;
    }

    /// <summary>A float32 initializer whose bytes live at <paramref name="offset"/> in an external data file.</summary>
    public static TensorProto External(string name, IReadOnlyList<int> shape, string location, long offset, long length)
    {
        var proto = Header(name, shape, DataType.Float);
        proto.DataLocation = TensorProto.Types.DataLocation.External;
        proto.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        proto.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        proto.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        return proto;
    }

    private static TensorProto Header(string name, IReadOnlyList<int> shape, DataType type)
    {
        var proto = new TensorProto { Name = name, DataType = (int)type };
        proto.Dims.AddRange(shape.Select(d => (long)d));
        return proto;
    }
}

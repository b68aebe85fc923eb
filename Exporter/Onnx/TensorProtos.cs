using System.Globalization;
using Google.Protobuf;
using OnnxGpt.Exporter.Onnx.Proto;

namespace OnnxGpt.Exporter.Onnx;

/// <summary>Builds ONNX initializers, inline or pointing into external data.</summary>
public static class TensorProtos
{
    /// <summary>An initializer whose bytes are stored in the model file (little-endian raw data).</summary>
    public static TensorProto Inline(WeightData weight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        var proto = Header(weight);
        proto.RawData = ByteString.CopyFrom(weight.Bytes);
        return proto;
    }

    /// <summary>An initializer whose bytes live at <paramref name="offset"/> in an external data file.</summary>
    public static TensorProto External(WeightData weight, string location, long offset)
    {
        var proto = Header(weight);
        proto.DataLocation = TensorProto.Types.DataLocation.External;
        proto.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        proto.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(CultureInfo.InvariantCulture) });
        proto.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = weight.Bytes.Length.ToString(CultureInfo.InvariantCulture) });
        return proto;
    }

    private static TensorProto Header(WeightData weight)
    {
        var proto = new TensorProto { Name = weight.Name, DataType = (int)weight.Type };
        proto.Dims.AddRange(weight.Dims);
        return proto;
    }
}

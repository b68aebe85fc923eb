using Google.Protobuf;
using OnnxGpt.Onnx.Proto;
using AttributeType = OnnxGpt.Onnx.Proto.AttributeProto.Types.AttributeType;

namespace OnnxGpt.Onnx;

/// <summary>Short constructors for node attributes.</summary>
public static class Attr
{
    public static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeType.Int, I = value };

    public static AttributeProto Float(string name, float value) => new() { Name = name, Type = AttributeType.Float, F = value };

    public static AttributeProto String(string name, string value) =>
        new() { Name = name, Type = AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }
}

using System.Runtime.InteropServices;
using DataType = OnnxGpt.Exporter.Onnx.Proto.TensorProto.Types.DataType;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Exporter.Onnx;

/// <summary>One initializer's name, shape, element type and bytes, before it is placed inline or in external data.</summary>
public sealed class WeightData
{
    private readonly float[]? _floats;
    private readonly byte[]? _bytes;

    /// <summary>A float weight from a tensor.</summary>
    public WeightData(string name, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        Name = name;
        Dims = tensor.Shape.Select(d => (long)d).ToArray();
        Type = DataType.Float;
        _floats = tensor.Data;
    }

    /// <summary>A float weight from its dimensions and elements.</summary>
    public WeightData(string name, long[] dims, float[] data)
    {
        Name = name;
        Dims = dims;
        Type = DataType.Float;
        _floats = data;
    }

    /// <summary>A weight of any element type, as raw little-endian bytes.</summary>
    public WeightData(string name, long[] dims, DataType type, byte[] data)
    {
        Name = name;
        Dims = dims;
        Type = type;
        _bytes = data;
    }

    /// <summary>The initializer name (the checkpoint's tensor name).</summary>
    public string Name { get; }

    /// <summary>The dimensions.</summary>
    public long[] Dims { get; }

    /// <summary>The element type.</summary>
    public DataType Type { get; }

    /// <summary>The little-endian bytes of the data.</summary>
    public ReadOnlySpan<byte> Bytes => _floats is not null ? MemoryMarshal.AsBytes(_floats.AsSpan()) : _bytes;

    /// <summary>The shape as text.</summary>
    public string ShapeText => Tensor.FormatShape(Dims);
}

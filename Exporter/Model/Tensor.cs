using OnnxGpt.Contracts;

namespace OnnxGpt.Exporter.Model;

/// <summary>A dense float32 tensor in row-major order.</summary>
public sealed class Tensor
{
    /// <summary>A tensor over <paramref name="data"/> (not copied), whose length must match <paramref name="shape"/>.</summary>
    public Tensor(int[] shape, float[] data)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        long count = ElementCount(shape);
        if (count != data.Length)
        {
            throw new ArgumentException($"shape [{string.Join(", ", shape)}] holds {count} values but data has {data.Length}.", nameof(data));
        }

        Shape = shape;
        Data = data;
    }

    /// <summary>A zero-filled tensor of <paramref name="shape"/>.</summary>
    public Tensor(params int[] shape) : this(shape, new float[checked((int)ElementCount(shape))]) { }

    /// <summary>The dimensions, outermost first.</summary>
    public int[] Shape { get; }

    /// <summary>The elements in row-major order.</summary>
    public float[] Data { get; }

    /// <summary>The number of dimensions.</summary>
    public int Rank => Shape.Length;

    /// <summary>The number of elements.</summary>
    public long Length => Data.Length;

    /// <summary>The shape as text, e.g. <c>[768, 2304]</c>.</summary>
    public string ShapeText => FormatShape(Shape);

    /// <summary>A shape as text, e.g. <c>[768, 2304]</c>.</summary>
    public static string FormatShape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>A shape as text, e.g. <c>[768, 2304]</c>.</summary>
    public static string FormatShape(IEnumerable<int> shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>The number of elements of <paramref name="shape"/>.</summary>
    public static long ElementCount(IReadOnlyList<int> shape)
    {
        long count = 1;
        foreach (var d in shape)
        {
            if (d < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(shape), $"dimension {d} is negative.");
            }

            count = checked(count * d);
        }

        return count;
    }

    /// <summary>Whether the shape is exactly <paramref name="other"/>.</summary>
    public bool ShapeEquals(IReadOnlyList<int> other) => Shape.AsSpan().SequenceEqual(other is int[] a ? a : other.ToArray());
}

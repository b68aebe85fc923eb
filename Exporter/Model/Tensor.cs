namespace OnnxGpt.Model;

/// <summary>A dense float32 tensor in row-major order.</summary>
public sealed class Tensor
{
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

    public Tensor(params int[] shape) : this(shape, new float[checked((int)ElementCount(shape))]) { }

    public int[] Shape { get; }

    public float[] Data { get; }

    public int Rank => Shape.Length;

    public long Length => Data.Length;

    public string ShapeText => FormatShape(Shape);

    public static string FormatShape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";

    public static string FormatShape(IEnumerable<int> shape) => "[" + string.Join(", ", shape) + "]";

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

    public bool ShapeEquals(IReadOnlyList<int> other) => Shape.AsSpan().SequenceEqual(other is int[] a ? a : other.ToArray());
}

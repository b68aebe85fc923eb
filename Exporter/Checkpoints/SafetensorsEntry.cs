using OnnxGpt.Contracts;

namespace OnnxGpt.Exporter.Checkpoints;

/// <summary>
/// One tensor as a safetensors header describes it. <see cref="Begin"/> and <see cref="End"/> are byte offsets
/// relative to the first byte after the header, as in the file; <see cref="End"/> is exclusive.
/// </summary>
public sealed record SafetensorsEntry(string Name, SafetensorsDType DType, IReadOnlyList<long> Shape, long Begin, long End)
{
    /// <summary>Number of elements: the product of <see cref="Shape"/> (1 for a scalar).</summary>
    public long ElementCount
    {
        get
        {
            long count = 1;
            foreach (var d in Shape)
            {
                count *= d;
            }

            return count;
        }
    }

    /// <summary>Number of bytes the tensor occupies in the file.</summary>
    public long ByteLength => End - Begin;

    /// <summary>The shape as text, e.g. <c>[32, 96]</c>.</summary>
    public string ShapeText => Model.Tensor.FormatShape(Shape);
}

using System.Buffers.Binary;
using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Exporter.Checkpoints;

/// <summary>
/// Writes float32 tensors as a safetensors file that the format's own readers (Python <c>safetensors</c>,
/// Hugging Face <c>transformers</c>) accept: <c>__metadata__</c> first, then the tensors in the order given,
/// with contiguous offsets from 0; the JSON header is padded with spaces to a multiple of 8 bytes so the data
/// starts aligned. The file appears under its name only once completely written.
/// </summary>
public static class SafetensorsWriter
{
    private const int ChunkElements = 1 << 20;

    /// <param name="path">The file to write (replaced if it exists; its folder must exist).</param>
    /// <param name="tensors">Name and tensor pairs, written in this order. Names must be unique.</param>
    /// <param name="metadata">Strings for <c>__metadata__</c>, written sorted by key; none when null or empty.</param>
    /// <param name="dtype">Storage type: F32 (exact), or F16 / BF16 (rounded to nearest even; beyond their range becomes infinity).</param>
    public static void Write(
        string path,
        IEnumerable<KeyValuePair<string, Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null,
        SafetensorsDType dtype = SafetensorsDType.F32)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        if (dtype is not (SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16))
        {
            throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "the writer stores F32, F16 or BF16.");
        }

        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, tensor) in list)
        {
            ArgumentNullException.ThrowIfNull(name, nameof(tensors));
            if (tensor is null)
            {
                throw new ArgumentException($"tensor '{name}' is null.", nameof(tensors));
            }

            if (name == SafetensorsHeader.MetadataKey)
            {
                throw new ArgumentException($"'{SafetensorsHeader.MetadataKey}' is reserved and cannot name a tensor.", nameof(tensors));
            }

            if (!names.Add(name))
            {
                throw new ArgumentException($"tensor '{name}' is given twice.", nameof(tensors));
            }
        }

        byte[] header = BuildHeader(list, metadata, dtype);
        string temp = $"{path}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> prefix = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
                stream.Write(prefix);
                stream.Write(header);
                foreach (var (_, tensor) in list)
                {
                    WriteData(stream, tensor.Data, dtype);
                }
            }

            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    private static byte[] BuildHeader(List<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata, SafetensorsDType dtype)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(SafetensorsHeader.MetadataKey);
                foreach (var (key, value) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                {
                    ArgumentNullException.ThrowIfNull(value, nameof(metadata));
                    json.WriteString(key, value);
                }

                json.WriteEndObject();
            }

            long offset = 0;
            foreach (var (name, tensor) in tensors)
            {
                long bytes = tensor.Length * dtype.Size();
                json.WriteStartObject(name);
                json.WriteString("dtype", dtype.ToString());
                json.WriteStartArray("shape");
                foreach (int d in tensor.Shape)
                {
                    json.WriteNumberValue(d);
                }

                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }

            json.WriteEndObject();
        }

        int padded = (buffer.WrittenCount + 7) / 8 * 8;
        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return header;
    }

    private static void WriteData(FileStream stream, float[] data, SafetensorsDType dtype)
    {
        if (dtype == SafetensorsDType.F32 && BitConverter.IsLittleEndian)
        {
            for (int start = 0; start < data.Length; start += ChunkElements)
            {
                stream.Write(MemoryMarshal.AsBytes(data.AsSpan(start, Math.Min(ChunkElements, data.Length - start))));
            }

            return;
        }

        int size = dtype.Size();
        byte[] buffer = ArrayPool<byte>.Shared.Rent(ChunkElements * size);
        try
        {
            for (int start = 0; start < data.Length; start += ChunkElements)
            {
                int n = Math.Min(ChunkElements, data.Length - start);
                var values = data.AsSpan(start, n);
                var bytes = buffer.AsSpan(0, n * size);
                switch (dtype)
                {
                    case SafetensorsDType.F16:
                        for (int i = 0; i < n; i++)
                        {
                            BinaryPrimitives.WriteUInt16LittleEndian(bytes[(2 * i)..], BitConverter.HalfToUInt16Bits((Half)values[i]));
                        }

                        break;
                    case SafetensorsDType.BF16:
                        for (int i = 0; i < n; i++)
                        {
                            BinaryPrimitives.WriteUInt16LittleEndian(bytes[(2 * i)..], ToBFloat16(values[i]));
                        }

                        break;
                    default: // F32 on a big-endian machine
                        for (int i = 0; i < n; i++)
                        {
                            BinaryPrimitives.WriteSingleLittleEndian(bytes[(4 * i)..], values[i]);
                        }

                        break;
                }

                stream.Write(bytes);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>float32 to bfloat16 bits, rounding to nearest even; NaN stays a quiet NaN with its sign.</summary>
    internal static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            return (ushort)((bits >> 16) | 0x0040);
        }

        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }
}

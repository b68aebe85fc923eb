using System.Buffers.Binary;
using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Exporter.Checkpoints;

/// <summary>
/// An open safetensors file: the header is read and checked when the file opens, tensors are read one at a time
/// on demand (so a multi-gigabyte checkpoint never sits in memory twice). Layout of the format:
/// an 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the tensor data.
/// <see cref="ReadTensor"/> uses positional reads and may be called from several threads at once.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    /// <summary>The largest header this reader accepts (the format's reference reader uses the same limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>Elements converted per read, so that reading never needs a second full-size buffer.</summary>
    private const int ChunkElements = 1 << 20;

    private readonly SafeFileHandle _handle;
    private readonly Dictionary<string, SafetensorsEntry> _byName;
    private readonly long _dataStart;

    private SafetensorsFile(string path, SafeFileHandle handle, long length, long dataStart, SafetensorsHeader header)
    {
        Path = path;
        _handle = handle;
        Length = length;
        _dataStart = dataStart;
        Entries = header.Entries.AsReadOnly();
        Metadata = header.Metadata.AsReadOnly();
        _byName = header.Entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
    }

    /// <summary>The file, as given to <see cref="Open"/>.</summary>
    public string Path { get; }

    /// <summary>File size in bytes.</summary>
    public long Length { get; }

    /// <summary>Every tensor in the file, in the order of their data.</summary>
    public IReadOnlyList<SafetensorsEntry> Entries { get; }

    /// <summary>The <c>__metadata__</c> strings (empty when the file has none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Opens a file and checks its header; throws <see cref="OnnxGptException"/> naming the file and the problem.</summary>
    public static SafetensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        SafeFileHandle handle = InputFile.OpenHandle(path, "safetensors file");
        try
        {
            long length = RandomAccess.GetLength(handle);
            if (length < 8)
            {
                throw new OnnxGptException(
                    $"{path}: the file is {length} bytes, too short for the 8-byte header length a safetensors file starts with.");
            }

            Span<byte> prefix = stackalloc byte[8];
            ReadExactly(handle, prefix, 0, path, "the header length");
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);

            // Check against the file before allocating anything: the length comes from the file and is not trusted.
            if (headerLength > (ulong)(length - 8))
            {
                throw new OnnxGptException(
                    $"{path}: the header length says {headerLength} bytes, but only {length - 8} bytes follow it; " +
                    "the file is truncated or not a safetensors file.");
            }

            if (headerLength > MaxHeaderBytes)
            {
                throw new OnnxGptException(
                    $"{path}: the header length says {headerLength} bytes, more than the {MaxHeaderBytes} this reader accepts.");
            }

            var json = new byte[(int)headerLength];
            ReadExactly(handle, json, 8, path, "the header");
            long dataStart = 8 + (long)headerLength;
            var header = SafetensorsHeader.Parse(json, length - dataStart, path);
            return new SafetensorsFile(path, handle, length, dataStart, header);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Whether the file holds a tensor named <paramref name="name"/>.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The header entry of the tensor named <paramref name="name"/>, if the file holds one.</summary>
    public bool TryGetEntry(string name, [MaybeNullWhen(false)] out SafetensorsEntry entry) => _byName.TryGetValue(name, out entry);

    /// <summary>The entry for a tensor; throws <see cref="OnnxGptException"/> naming the file and tensor if absent.</summary>
    public SafetensorsEntry GetEntry(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _byName.TryGetValue(name, out var entry)
            ? entry
            : throw new OnnxGptException($"{Path}: has no tensor '{name}' (it holds {Entries.Count} tensors).");
    }

    /// <summary>
    /// Reads one tensor and converts it to float32. F32, F16 and BF16 convert exactly; F64 rounds to nearest.
    /// Other dtypes are an error naming the tensor and its dtype.
    /// </summary>
    public Tensor ReadTensor(string name)
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        var entry = GetEntry(name);
        if (!entry.DType.ConvertsToFloat32())
        {
            throw new OnnxGptException(
                $"{Path}: tensor '{name}' has dtype {entry.DType}; expected a floating-point dtype ({SafetensorsDTypes.FloatSpellings}).");
        }

        var shape = new int[entry.Shape.Count];
        for (int i = 0; i < shape.Length; i++)
        {
            shape[i] = entry.Shape[i] <= int.MaxValue
                ? (int)entry.Shape[i]
                : throw new OnnxGptException($"{Path}: tensor '{name}' has dimension {entry.Shape[i]}, larger than a tensor dimension may be ({int.MaxValue}).");
        }

        long count = entry.ElementCount;
        if (count > Array.MaxLength)
        {
            throw new OnnxGptException(
                $"{Path}: tensor '{name}' {entry.ShapeText} holds {count} values, more than one float32 tensor can hold ({Array.MaxLength}).");
        }

        var data = new float[count];
        long offset = _dataStart + entry.Begin;
        if (entry.DType == SafetensorsDType.F32)
        {
            for (int start = 0; start < data.Length; start += ChunkElements)
            {
                var chunk = data.AsSpan(start, Math.Min(ChunkElements, data.Length - start));
                ReadExactly(_handle, MemoryMarshal.AsBytes(chunk), offset + 4L * start, Path, $"tensor '{name}'");
                if (!BitConverter.IsLittleEndian)
                {
                    var bits = MemoryMarshal.Cast<float, uint>(chunk);
                    BinaryPrimitives.ReverseEndianness(bits, bits);
                }
            }
        }
        else
        {
            int size = entry.DType.Size();
            byte[] buffer = ArrayPool<byte>.Shared.Rent(ChunkElements * size);
            try
            {
                for (int start = 0; start < data.Length; start += ChunkElements)
                {
                    int n = Math.Min(ChunkElements, data.Length - start);
                    var bytes = buffer.AsSpan(0, n * size);
                    ReadExactly(_handle, bytes, offset + (long)size * start, Path, $"tensor '{name}'");
                    Convert(entry.DType, bytes, data.AsSpan(start, n));
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        return new Tensor(shape, data);
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => _handle.Dispose();

    /// <summary>Converts little-endian F16/BF16/F64 bytes to float32 (the bytes are reused as scratch).</summary>
    private static void Convert(SafetensorsDType dtype, Span<byte> bytes, Span<float> values)
    {
        switch (dtype)
        {
            case SafetensorsDType.F16:
            case SafetensorsDType.BF16:
                var halves = MemoryMarshal.Cast<byte, ushort>(bytes);
                if (!BitConverter.IsLittleEndian)
                {
                    BinaryPrimitives.ReverseEndianness(halves, halves);
                }

                if (dtype == SafetensorsDType.F16)
                {
                    for (int i = 0; i < values.Length; i++)
                    {
                        values[i] = (float)BitConverter.UInt16BitsToHalf(halves[i]);
                    }
                }
                else
                {
                    // bfloat16 is the upper half of a float32.
                    for (int i = 0; i < values.Length; i++)
                    {
                        values[i] = BitConverter.UInt32BitsToSingle((uint)halves[i] << 16);
                    }
                }

                break;
            case SafetensorsDType.F64:
                var longs = MemoryMarshal.Cast<byte, ulong>(bytes);
                if (!BitConverter.IsLittleEndian)
                {
                    BinaryPrimitives.ReverseEndianness(longs, longs);
                }

                for (int i = 0; i < values.Length; i++)
                {
                    values[i] = (float)BitConverter.UInt64BitsToDouble(longs[i]);
                }

                break;
            default:
                throw new InvalidOperationException($"no float32 conversion for {dtype}");
        }
    }

    private static void ReadExactly(SafeFileHandle handle, Span<byte> destination, long offset, string path, string what)
    {
        int done = 0;
        while (done < destination.Length)
        {
            int n = RandomAccess.Read(handle, destination[done..], offset + done);
            if (n == 0)
            {
                throw new OnnxGptException(
                    $"{path}: the file ended at byte {offset + done} while reading {what}; it is truncated or changed while open.");
            }

            done += n;
        }
    }
}

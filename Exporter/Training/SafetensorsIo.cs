using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using OnnxGpt.Model;

namespace OnnxGpt.Training;

/// <summary>
/// Minimal float32 safetensors reading and writing for the trainer's own files (weights and optimizer state):
/// an 8-byte little-endian header length, a JSON header of dtype/shape/data_offsets, then the raw data.
/// </summary>
internal static class SafetensorsIo
{
    private const long MaxHeaderBytes = 100_000_000;

    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("safetensors writing needs a little-endian machine.");
        }

        var list = tensors.ToList();
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (k, v) in metadata)
            {
                meta[k] = v;
            }

            header["__metadata__"] = meta;
        }

        long offset = 0;
        foreach (var (name, tensor) in list)
        {
            long bytes = tensor.Length * sizeof(float);
            header[name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(tensor.Shape.Select(d => (JsonNode)JsonValue.Create((long)d)).ToArray()),
                ["data_offsets"] = new JsonArray(JsonValue.Create(offset), JsonValue.Create(offset + bytes)),
            };
            offset += bytes;
        }

        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        Span<byte> length = stackalloc byte[8];
        BitConverter.TryWriteBytes(length, (ulong)padded);
        stream.Write(length);
        stream.Write(json);
        for (int i = json.Length; i < padded; i++)
        {
            stream.WriteByte((byte)' ');
        }

        foreach (var (_, tensor) in list)
        {
            stream.Write(MemoryMarshal.AsBytes(tensor.Data.AsSpan()));
        }
    }

    public static Dictionary<string, Tensor> Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new OnnxGptException($"{path}: file not found.");
        }

        using var stream = File.OpenRead(path);
        Span<byte> lengthBytes = stackalloc byte[8];
        if (stream.Length < 8 || stream.Read(lengthBytes) != 8)
        {
            throw new OnnxGptException($"{path}: too short to be safetensors (no 8-byte header length).");
        }

        ulong headerLength = BitConverter.ToUInt64(lengthBytes);
        if (headerLength > MaxHeaderBytes || (long)headerLength > stream.Length - 8)
        {
            throw new OnnxGptException($"{path}: header length {headerLength} is impossible for a {stream.Length}-byte file.");
        }

        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        JsonObject header;
        try
        {
            header = JsonNode.Parse(headerBytes) as JsonObject ?? throw new OnnxGptException($"{path}: header is not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new OnnxGptException($"{path}: header is not valid JSON ({e.Message}).", e);
        }

        long dataStart = 8 + (long)headerLength, dataLength = stream.Length - dataStart;
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
            {
                continue;
            }

            try
            {
                var entry = node as JsonObject ?? throw new OnnxGptException($"{path}: tensor '{name}' has no header object.");
                JsonNode Field(string field) => entry[field] ?? throw new OnnxGptException($"{path}: tensor '{name}' has no '{field}'.");
                string dtype = Field("dtype").GetValue<string>();
                if (dtype != "F32")
                {
                    throw new OnnxGptException($"{path}: tensor '{name}' has dtype {dtype}; this reader takes F32 only.");
                }

                int[] shape = Field("shape").AsArray().Select(d => checked((int)(d ?? 0L).GetValue<long>())).ToArray();
                var offsets = Field("data_offsets").AsArray().Select(d => (d ?? -1L).GetValue<long>()).ToArray();
                long count = Tensor.ElementCount(shape);
                if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] > dataLength || offsets[1] - offsets[0] != count * sizeof(float)
                    || count > Array.MaxLength)
                {
                    throw new OnnxGptException(
                        $"{path}: tensor '{name}' of shape {Tensor.FormatShape(shape)} has data_offsets [{string.Join(", ", offsets)}] that do not fit the shape or the file.");
                }

                var data = new float[count];
                stream.Position = dataStart + offsets[0];
                stream.ReadExactly(MemoryMarshal.AsBytes(data.AsSpan()));
                result[name] = new Tensor(shape, data);
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException or ArgumentOutOfRangeException)
            {
                throw new OnnxGptException($"{path}: tensor '{name}' has a malformed header entry ({e.Message}).", e);
            }
        }

        return result;
    }
}

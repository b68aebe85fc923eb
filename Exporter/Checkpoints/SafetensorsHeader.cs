using System.Text.Json;
using OnnxGpt.Contracts;

namespace OnnxGpt.Exporter.Checkpoints;

/// <summary>
/// Parses and checks a safetensors header: the JSON object that maps tensor names to
/// <c>{"dtype", "shape", "data_offsets"}</c>, plus an optional <c>"__metadata__"</c> object of strings.
/// Checks follow the format's reference reader: every field present and well typed, a known dtype,
/// byte counts that match shape × element size, and tensors that tile the data region exactly
/// (starting at 0, no overlaps, no gaps, ending at the end of the file).
/// </summary>
internal sealed class SafetensorsHeader
{
    public const string MetadataKey = "__metadata__";

    private SafetensorsHeader(List<SafetensorsEntry> entries, Dictionary<string, string> metadata)
    {
        Entries = entries;
        Metadata = metadata;
    }

    /// <summary>Entries in data order (by offset).</summary>
    public List<SafetensorsEntry> Entries { get; }

    public Dictionary<string, string> Metadata { get; }

    /// <param name="json">The header bytes (UTF-8 JSON, possibly padded with trailing spaces).</param>
    /// <param name="dataLength">Bytes in the file after the header.</param>
    /// <param name="source">The file, for messages.</param>
    public static SafetensorsHeader Parse(ReadOnlyMemory<byte> json, long dataLength, string source)
    {
        if (json.Length == 0 || json.Span[0] != (byte)'{')
        {
            string found = json.Length == 0 ? "an empty header" : $"byte 0x{json.Span[0]:X2}";
            throw new OnnxGptException(
                $"{source}: the safetensors header must be a JSON object starting with '{{', found {found}. Is this a safetensors file?");
        }

        // The project's one JSON reader: UTF-8, syntax, duplicate keys and lone surrogates checked with their JSON path.
        var document = JsonInput.Parse(json, source);
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new OnnxGptException($"{source}: the safetensors header must be a JSON object, found {root.ValueKind}.");
            }

            var entries = new List<SafetensorsEntry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var property in root.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    ReadMetadata(property.Value, metadata, source);
                }
                else
                {
                    entries.Add(ReadEntry(property.Name, property.Value, dataLength, source));
                }
            }

            CheckLayout(entries, dataLength, source);
            return new SafetensorsHeader(entries, metadata);
        }
    }

    private static void ReadMetadata(JsonElement value, Dictionary<string, string> metadata, string source)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new OnnxGptException($"{source}: '{MetadataKey}' must be an object of strings, found {Show(value)}.");
        }

        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
            {
                throw new OnnxGptException(
                    $"{source}: '{MetadataKey}' entry '{item.Name}' must be a string, found {Show(item.Value)}.");
            }

            if (!metadata.TryAdd(item.Name, item.Value.GetString()!))
            {
                throw new OnnxGptException($"{source}: '{MetadataKey}' names '{item.Name}' twice.");
            }
        }
    }

    private static SafetensorsEntry ReadEntry(string name, JsonElement value, long dataLength, string source)
    {
        string where = $"{source}: tensor '{name}'";
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new OnnxGptException($"{where}: expected an object with dtype, shape and data_offsets, found {Show(value)}.");
        }

        JsonElement Field(string field) => value.TryGetProperty(field, out var f)
            ? f
            : throw new OnnxGptException($"{where}: field '{field}' is missing.");

        var dtypeElement = Field("dtype");
        if (dtypeElement.ValueKind != JsonValueKind.String)
        {
            throw new OnnxGptException($"{where}: field 'dtype' must be a string, found {Show(dtypeElement)}.");
        }

        string dtypeText = dtypeElement.GetString()!;
        var dtype = SafetensorsDTypes.Parse(dtypeText)
            ?? throw new OnnxGptException(
                $"{where}: unknown dtype '{Clip(dtypeText)}'; expected one of {SafetensorsDTypes.KnownSpellings}.");

        var shapeElement = Field("shape");
        if (shapeElement.ValueKind != JsonValueKind.Array)
        {
            throw new OnnxGptException($"{where}: field 'shape' must be an array of non-negative integers, found {Show(shapeElement)}.");
        }

        var shape = new List<long>();
        long elements = 1;
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long dim) || dim < 0)
            {
                throw new OnnxGptException(
                    $"{where}: field 'shape' must hold non-negative integers, found {Show(d)} in {Show(shapeElement)}.");
            }

            shape.Add(dim);
            try
            {
                elements = checked(elements * dim);
            }
            catch (OverflowException)
            {
                throw new OnnxGptException($"{where}: shape {Show(shapeElement)} holds more elements than a 64-bit count can express.");
            }
        }

        var offsets = Field("data_offsets");
        if (offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
        {
            throw new OnnxGptException(
                $"{where}: field 'data_offsets' must be an array [begin, end] of two non-negative integers, found {Show(offsets)}.");
        }

        long Offset(int i)
        {
            var o = offsets[i];
            return o.ValueKind == JsonValueKind.Number && o.TryGetInt64(out long v) && v >= 0
                ? v
                : throw new OnnxGptException(
                    $"{where}: field 'data_offsets' must hold two non-negative integers, found {Show(offsets)}.");
        }

        long begin = Offset(0), end = Offset(1);
        if (end < begin)
        {
            throw new OnnxGptException($"{where}: data_offsets [{begin}, {end}] end before they begin.");
        }

        if (end > dataLength)
        {
            throw new OnnxGptException(
                $"{where}: data_offsets [{begin}, {end}] reach past the {dataLength} data bytes the file holds; the file may be truncated.");
        }

        long expectedBytes;
        try
        {
            expectedBytes = checked(elements * dtype.Size());
        }
        catch (OverflowException)
        {
            throw new OnnxGptException($"{where}: shape {Show(shapeElement)} of {dtype} is too large to address.");
        }

        if (end - begin != expectedBytes)
        {
            throw new OnnxGptException(
                $"{where}: shape {Model.Tensor.FormatShape(shape)} of {dtype} needs {expectedBytes} bytes " +
                $"({elements} × {dtype.Size()}), but data_offsets [{begin}, {end}] hold {end - begin}.");
        }

        return new SafetensorsEntry(name, dtype, shape.AsReadOnly(), begin, end);
    }

    /// <summary>Sorts the entries by offset and checks that they tile the data region exactly.</summary>
    private static void CheckLayout(List<SafetensorsEntry> entries, long dataLength, string source)
    {
        entries.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long position = 0;
        SafetensorsEntry? previous = null;
        foreach (var entry in entries)
        {
            if (entry.Begin < position)
            {
                throw new OnnxGptException(
                    $"{source}: tensor '{entry.Name}' at bytes [{entry.Begin}, {entry.End}) overlaps tensor '{previous!.Name}' " +
                    $"at [{previous.Begin}, {previous.End}).");
            }

            if (entry.Begin > position)
            {
                string after = previous is null ? "the start of the data" : $"tensor '{previous.Name}' (which ends at {position})";
                throw new OnnxGptException(
                    $"{source}: tensor '{entry.Name}' begins at byte {entry.Begin}, expected {position}: " +
                    $"a gap of {entry.Begin - position} bytes after {after}. Safetensors data must be contiguous.");
            }

            position = entry.End;
            previous = entry;
        }

        if (position != dataLength)
        {
            throw new OnnxGptException(
                $"{source}: the tensors cover {position} data bytes but the file holds {dataLength} after the header; " +
                $"{dataLength - position} trailing bytes belong to no tensor.");
        }
    }

    private static string Show(JsonElement element) => Clip(element.GetRawText());

    private static string Clip(string text) => text.Length <= 80 ? text : text[..77] + "...";
}

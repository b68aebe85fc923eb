using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Google.Protobuf;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Onnx.Proto;

namespace OnnxGpt.Exporter.Onnx;

/// <summary>
/// Reads an ONNX file and summarises what a person wants to know before opening Netron: inputs and outputs with
/// shapes, operator counts, parameter count and bytes, opset, and the metadata.
/// </summary>
public sealed partial class ModelInspector
{
    private ModelInspector(string path, ModelProto model, long fileBytes, long externalBytes)
    {
        Path = path;
        Model = model;
        FileBytes = fileBytes;
        ExternalBytes = externalBytes;
    }

    /// <summary>The <c>.onnx</c> file inspected.</summary>
    public string Path { get; }

    /// <summary>The parsed model.</summary>
    public ModelProto Model { get; }

    /// <summary>The size of the <c>.onnx</c> file.</summary>
    public long FileBytes { get; }

    /// <summary>Bytes of external data files referenced by initializers (0 when all weights are inline).</summary>
    public long ExternalBytes { get; }

    /// <summary>The model's <c>metadata_props</c>.</summary>
    public IReadOnlyDictionary<string, string> Metadata => Model.MetadataProps.ToDictionary(p => p.Key, p => p.Value);

    /// <summary>Number of values in the weight initializers: floating-point ones of rank 1 or more (not scalar or index constants).</summary>
    public long ParameterCount => Model.Graph.Initializer
        .Where(t => t.Dims.Count > 0 && (TensorProto.Types.DataType)t.DataType is TensorProto.Types.DataType.Float
            or TensorProto.Types.DataType.Float16 or TensorProto.Types.DataType.Bfloat16)
        .Aggregate(0L, (sum, t) => SaturatingAdd(sum, Elements(t)));

    /// <summary>Bytes of initializer data, inline or external.</summary>
    public long ParameterBytes => Model.Graph.Initializer.Aggregate(0L, (sum, t) => SaturatingAdd(sum, InitializerBytes(t)));

    private static long SaturatingAdd(long a, long b) => b > long.MaxValue - a ? long.MaxValue : a + b;

    /// <summary>Node counts by operator (domain-qualified when not ai.onnx), most frequent first.</summary>
    public IReadOnlyList<(string Op, int Count)> OperatorCounts => Model.Graph.Node
        .GroupBy(n => string.IsNullOrEmpty(n.Domain) || n.Domain == "ai.onnx" ? n.OpType : $"{n.Domain}.{n.OpType}")
        .Select(g => (g.Key, g.Count()))
        .OrderByDescending(x => x.Item2).ThenBy(x => x.Key, StringComparer.Ordinal)
        .ToList();

    /// <summary>Opens a model file, or the <c>model.onnx</c> in a folder.</summary>
    public static ModelInspector Open(string pathOrFolder)
    {
        ArgumentException.ThrowIfNullOrEmpty(pathOrFolder);
        string path = Directory.Exists(pathOrFolder) ? System.IO.Path.Combine(pathOrFolder, "model.onnx") : pathOrFolder;
        if (!InputFile.Exists(path))
        {
            throw new OnnxGptException($"'{path}' does not exist; expected an ONNX model file or a folder holding model.onnx.");
        }

        ModelProto model;
        long fileBytes;
        try
        {
            using var stream = InputFile.OpenRead(path, "ONNX model file");
            fileBytes = stream.Length;
            if (fileBytes > MaxModelFileBytes)
            {
                throw new OnnxGptException($"'{path}' is {fileBytes} bytes; an ONNX model file holds at most {MaxModelFileBytes} (protobuf's 2 GiB limit).");
            }

            model = ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new OnnxGptException($"'{path}' is not a valid ONNX model: {e.Message}", e);
        }
        catch (IOException e)
        {
            throw new OnnxGptException($"'{path}' cannot be read: {e.Message}", e);
        }

        if (model.Graph is null)
        {
            throw new OnnxGptException($"'{path}' has no graph; it is not an ONNX model.");
        }

        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var tensor in model.Graph.Initializer.Where(t => t.DataLocation == TensorProto.Types.DataLocation.External))
        {
            ExternalData(tensor, path);   // every entry well formed
            string? location = tensor.ExternalData.FirstOrDefault(e => e.Key == "location")?.Value;
            if (location is null || sizes.ContainsKey(location))
            {
                continue;
            }

            // The same rule as every file a folder names: inside the model's folder, after links, and a regular file.
            string file = FolderPaths.ResolveInside(folder, location, $"'{path}': initializer '{tensor.Name}' external_data location");
            sizes[location] = InputFile.IsRegularFile(file) ? new FileInfo(file).Length : 0;
        }

        var inspector = new ModelInspector(path, model, fileBytes, sizes.Values.Sum());
        _ = inspector.ParameterBytes;   // dims and lengths checked now, not when the summary is printed
        _ = inspector.ParameterCount;
        return inspector;
    }

    /// <summary>The largest model file parsed (protobuf's limit for one message).</summary>
    public const long MaxModelFileBytes = int.MaxValue;

    /// <summary>The offset and length of an external initializer, each a non-negative integer when present.</summary>
    private static (long Offset, long? Length) ExternalData(TensorProto t, string path)
    {
        long offset = 0;
        long? length = null;
        foreach (var entry in t.ExternalData)
        {
            if (entry.Key is "offset" or "length")
            {
                if (!long.TryParse(entry.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long value))
                {
                    throw new OnnxGptException(
                        $"'{path}': initializer '{t.Name}' has external_data {entry.Key} '{Clip(entry.Value)}'; expected a non-negative integer below 2^63.");
                }

                if (entry.Key == "offset")
                {
                    offset = value;
                }
                else
                {
                    length = value;
                }
            }
        }

        return (offset, length);
    }

    private static string Clip(string text) => text.Length <= 40 ? text : text[..37] + "...";

    /// <summary>The element count of an initializer; dims that are negative or whose product overflows are an error naming it.</summary>
    private long Elements(TensorProto t)
    {
        long count = 1;
        foreach (long d in t.Dims)
        {
            if (d < 0)
            {
                throw new OnnxGptException($"'{Path}': initializer '{t.Name}' has dimension {d}; expected dimensions of 0 or more.");
            }

            try
            {
                count = checked(count * d);
            }
            catch (OverflowException)
            {
                throw new OnnxGptException($"'{Path}': initializer '{t.Name}' has dims [{string.Join(", ", t.Dims)}], whose product overflows a 64-bit count.");
            }
        }

        return count;
    }

    /// <summary>The text <c>onnxgpt inspect</c> prints.</summary>
    public string Summary()
    {
        var s = new StringBuilder();
        var m = Model;
        s.AppendLine($"{Path}  ({Mb(FileBytes)}{(ExternalBytes > 0 ? $" + external data {Mb(ExternalBytes)}" : "")})");
        s.AppendLine($"producer  {m.ProducerName} {m.ProducerVersion}; IR {m.IrVersion}; opsets {string.Join(", ", m.OpsetImport.Select(o => $"{(o.Domain.Length == 0 ? "ai.onnx" : o.Domain)} {o.Version}"))}");
        if (m.Graph.DocString.Length > 0)
        {
            s.AppendLine($"about     {m.Graph.DocString}");
        }

        s.AppendLine();
        s.AppendLine("inputs");
        AppendValues(s, m.Graph.Input.Where(i => m.Graph.Initializer.All(t => t.Name != i.Name)));
        s.AppendLine("outputs");
        AppendValues(s, m.Graph.Output);
        s.AppendLine();
        s.AppendLine($"parameters  {ParameterCount.ToString("N0", CultureInfo.InvariantCulture)} in {m.Graph.Initializer.Count} initializers, {Mb(ParameterBytes)}");
        s.AppendLine($"operators   {m.Graph.Node.Count} nodes: {string.Join(", ", OperatorCounts.Select(o => $"{o.Op} {o.Count}"))}");
        if (m.MetadataProps.Count > 0)
        {
            s.AppendLine();
            s.AppendLine("metadata");
            foreach (var p in m.MetadataProps)
            {
                s.AppendLine($"  {p.Key} = {p.Value}");
            }
        }

        return s.ToString();
    }

    private static void AppendValues(StringBuilder s, IEnumerable<ValueInfoProto> values)
    {
        // Layer-indexed names (past_key_values.0.key ... .47.key) collapse into one line.
        foreach (var group in values.GroupBy(v => LayerIndex().Replace(v.Name, ".{i}."), StringComparer.Ordinal))
        {
            var first = group.First();
            string name = group.Count() > 1 ? $"{group.Key} (i = 0..{group.Count() - 1})" : first.Name;
            s.AppendLine($"  {name,-44} {TypeText(first.Type)}");
        }
    }

    private static string TypeText(TypeProto? type)
    {
        if (type?.TensorType is not { } t)
        {
            return "(not a tensor)";
        }

        string elem = ((TensorProto.Types.DataType)t.ElemType).ToString().ToLowerInvariant();
        string dims = t.Shape is null ? "?" : "[" + string.Join(", ", t.Shape.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam ? d.DimParam : d.DimValue.ToString(CultureInfo.InvariantCulture))) + "]";
        return $"{elem} {dims}";
    }

    private long InitializerBytes(TensorProto t)
    {
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
        {
            return ExternalData(t, Path).Length ?? 0;
        }

        return t.RawData.Length + 4L * t.FloatData.Count + 4L * t.Int32Data.Count + 8L * t.Int64Data.Count + 8L * t.DoubleData.Count;
    }

    private static string Mb(long bytes) => $"{bytes / 1048576.0:F1} MiB";

    [GeneratedRegex(@"\.\d+\.")]
    private static partial Regex LayerIndex();
}

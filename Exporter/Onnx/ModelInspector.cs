using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Google.Protobuf;
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
        .Sum(t => t.Dims.Aggregate(1L, (a, d) => a * d));

    /// <summary>Bytes of initializer data, inline or external.</summary>
    public long ParameterBytes => Model.Graph.Initializer.Sum(InitializerBytes);

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
        if (!File.Exists(path))
        {
            throw new OnnxGptException($"'{path}' does not exist; expected an ONNX model file or a folder holding model.onnx.");
        }

        ModelProto model;
        try
        {
            using var stream = File.OpenRead(path);
            model = ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new OnnxGptException($"'{path}' is not a valid ONNX model: {e.Message}", e);
        }

        if (model.Graph is null)
        {
            throw new OnnxGptException($"'{path}' has no graph; it is not an ONNX model.");
        }

        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        long external = model.Graph.Initializer
            .Where(t => t.DataLocation == TensorProto.Types.DataLocation.External)
            .Select(t => t.ExternalData.FirstOrDefault(e => e.Key == "location")?.Value)
            .Where(l => l is not null).Distinct()
            .Sum(l => new FileInfo(System.IO.Path.Combine(folder, l!)) is { Exists: true } f ? f.Length : 0);
        return new ModelInspector(path, model, new FileInfo(path).Length, external);
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

    private static long InitializerBytes(TensorProto t)
    {
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
        {
            var length = t.ExternalData.FirstOrDefault(e => e.Key == "length")?.Value;
            return length is null ? 0 : long.Parse(length, CultureInfo.InvariantCulture);
        }

        return t.RawData.Length + 4L * t.FloatData.Count + 4L * t.Int32Data.Count + 8L * t.Int64Data.Count + 8L * t.DoubleData.Count;
    }

    private static string Mb(long bytes) => $"{bytes / 1048576.0:F1} MiB";

    [GeneratedRegex(@"\.\d+\.")]
    private static partial Regex LayerIndex();
}

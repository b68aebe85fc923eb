using System.Runtime.InteropServices;
using DataType = OnnxGpt.Exporter.Onnx.Proto.TensorProto.Types.DataType;
using Google.Protobuf;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Onnx.Proto;

namespace OnnxGpt.Exporter.Onnx;

/// <summary>
/// Builds an ONNX graph with names people can read in Netron: nodes are named by scope
/// (<c>/model/layers.0/attn/Softmax</c>), values <c>{node}/output_0</c>, initializers keep checkpoint names.
/// A duplicate node, value or initializer name is a bug and throws.
/// </summary>
public sealed class OnnxGraphBuilder
{
    private readonly GraphProto _graph = new();
    private readonly HashSet<string> _nodeNames = new(StringComparer.Ordinal);
    private readonly HashSet<string> _valueNames = new(StringComparer.Ordinal);
    private readonly List<string> _scopes = [];

    /// <summary>A builder for a graph named <paramref name="name"/>, node names scoped under <paramref name="rootScope"/>.</summary>
    public OnnxGraphBuilder(string name, string rootScope = "model")
    {
        _graph.Name = name;
        _scopes.Add(rootScope);
    }

    /// <summary>The graph built so far.</summary>
    public GraphProto Graph => _graph;

    /// <summary>The current scope path, e.g. <c>/model/layers.0/attn</c>.</summary>
    public string ScopePath => "/" + string.Join('/', _scopes);

    /// <summary>Enters a named scope until the returned handle is disposed.</summary>
    public IDisposable Scope(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        _scopes.Add(name);
        int depth = _scopes.Count;
        return new ScopeHandle(this, depth);
    }

    /// <summary>Adds a node named <c>{scope}/{name ?? opType}</c> and returns its output value names.</summary>
    public string[] Node(string opType, IReadOnlyList<string> inputs, int outputs = 1, string? name = null,
        string domain = "", params AttributeProto[] attributes)
    {
        var nodeName = $"{ScopePath}/{name ?? opType}";
        if (!_nodeNames.Add(nodeName))
        {
            throw new InvalidOperationException($"duplicate ONNX node name '{nodeName}'; give the node a distinct name.");
        }

        var node = new NodeProto { Name = nodeName, OpType = opType, Domain = domain };
        node.Input.AddRange(inputs);
        var outs = new string[outputs];
        for (int i = 0; i < outputs; i++)
        {
            outs[i] = ClaimValue($"{nodeName}/output_{i}");
        }

        node.Output.AddRange(outs);
        node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
        return outs;
    }

    /// <summary>Adds a single-output node and returns its output.</summary>
    public string Op(string opType, params string[] inputs) => Node(opType, inputs)[0];

    /// <summary>Adds a single-output node with an explicit name (for a second node of the same type in a scope).</summary>
    public string Named(string name, string opType, string[] inputs, params AttributeProto[] attributes) =>
        Node(opType, inputs, 1, name, "", attributes)[0];

    /// <summary>Adds a single-output node with attributes.</summary>
    public string OpWith(string opType, string[] inputs, params AttributeProto[] attributes) =>
        Node(opType, inputs, 1, null, "", attributes)[0];

    /// <summary>Adds an initializer (inline or with its data in an external file); see <see cref="TensorProtos"/>.</summary>
    public string Initializer(TensorProto proto)
    {
        ArgumentNullException.ThrowIfNull(proto);
        ClaimValue(proto.Name);
        _graph.Initializer.Add(proto);
        return proto.Name;
    }

    /// <summary>Gives a declared graph input a default value: an initializer of the same name, which callers may override.</summary>
    public void DefaultFor(string inputName, TensorProto value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Name != inputName || _graph.Input.All(i => i.Name != inputName))
        {
            throw new InvalidOperationException($"'{inputName}' is not a graph input, so it cannot have a default.");
        }

        _graph.Initializer.Add(value);
    }

    /// <summary>A small 1-D int64 constant, named in the current scope.</summary>
    public string ConstInt64(string name, params long[] values) => Constant(name, DataType.Int64, [values.Length], MemoryMarshal.AsBytes(values.AsSpan()));

    /// <summary>An int64 scalar (rank 0) constant, named in the current scope.</summary>
    public string ScalarInt64(string name, long value) => Constant(name, DataType.Int64, [], MemoryMarshal.AsBytes(new[] { value }.AsSpan()));

    /// <summary>A float scalar (rank 0) constant, named in the current scope.</summary>
    public string ScalarFloat(string name, float value) => Constant(name, DataType.Float, [], MemoryMarshal.AsBytes(new[] { value }.AsSpan()));

    /// <summary>A scalar constant of a floating-point type (float32 or float16), named in the current scope.</summary>
    public string Scalar(string name, DataType type, float value) => type switch
    {
        DataType.Float => ScalarFloat(name, value),
        DataType.Float16 => Constant(name, DataType.Float16, [], MemoryMarshal.AsBytes(new[] { (Half)value }.AsSpan())),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "a scalar constant is float32 or float16."),
    };

    private string Constant(string name, DataType type, long[] dims, ReadOnlySpan<byte> bytes)
    {
        var proto = new TensorProto { Name = ClaimValue($"{ScopePath}/{name}"), DataType = (int)type };
        proto.Dims.AddRange(dims);
        proto.RawData = ByteString.CopyFrom(bytes);
        _graph.Initializer.Add(proto);
        return proto.Name;
    }

    /// <summary>Declares a graph input; dims are numbers or symbolic names.</summary>
    public string Input(string name, DataType type, params object[] dims)
    {
        _graph.Input.Add(ValueInfo(ClaimValue(name), type, dims));
        return name;
    }

    /// <summary>Declares a graph output by renaming the node output that produces it (no Identity node needed).</summary>
    public void Output(string name, string producedBy, DataType type, params object[] dims)
    {
        // Rename the producing node's output so the graph needs no Identity node.
        foreach (var node in _graph.Node)
        {
            for (int i = 0; i < node.Output.Count; i++)
            {
                if (node.Output[i] == producedBy)
                {
                    _valueNames.Remove(producedBy);
                    node.Output[i] = ClaimValue(name);
                    foreach (var consumer in _graph.Node)
                    {
                        for (int j = 0; j < consumer.Input.Count; j++)
                        {
                            if (consumer.Input[j] == producedBy)
                            {
                                consumer.Input[j] = name;
                            }
                        }
                    }

                    _graph.Output.Add(ValueInfo(name, type, dims));
                    return;
                }
            }
        }

        throw new InvalidOperationException($"no node produces '{producedBy}', so it cannot become graph output '{name}'.");
    }

    /// <summary>A graph input or output description: element type and dimensions (numbers, or names for symbolic ones).</summary>
    public static ValueInfoProto ValueInfo(string name, DataType type, IEnumerable<object> dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
        {
            shape.Dim.Add(d switch
            {
                string s => new TensorShapeProto.Types.Dimension { DimParam = s },
                int i => new TensorShapeProto.Types.Dimension { DimValue = i },
                long l => new TensorShapeProto.Types.Dimension { DimValue = l },
                _ => throw new ArgumentException($"dimension {d} must be a string, int or long."),
            });
        }

        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    private string ClaimValue(string name)
    {
        if (!_valueNames.Add(name))
        {
            throw new InvalidOperationException($"duplicate ONNX value name '{name}'.");
        }

        return name;
    }

    private void ExitScope(int depth)
    {
        if (_scopes.Count != depth)
        {
            throw new InvalidOperationException("scopes must be closed in the reverse order they were opened.");
        }

        _scopes.RemoveAt(_scopes.Count - 1);
    }

    private sealed class ScopeHandle(OnnxGraphBuilder owner, int depth) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (!_disposed)
            {
                _disposed = true;
                owner.ExitScope(depth);
            }
        }
    }
}

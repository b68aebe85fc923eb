namespace OnnxGpt.Exporter;

/// <summary>Where the weights of an exported model go.</summary>
public enum ExternalDataMode
{
    /// <summary>Inline in <c>model.onnx</c> unless they exceed what one protobuf file can hold (2 GiB), then external.</summary>
    Auto,

    /// <summary>Always in <c>model.onnx.data</c> beside the model.</summary>
    Always,
}

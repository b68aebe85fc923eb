namespace OnnxGpt.Export;

/// <summary>File names inside an exported model folder (see models/README.md).</summary>
public static class ModelFolder
{
    public const string ModelFile = "model.onnx";
    public const string ExternalDataFile = "model.onnx.data";
    public const string ConfigFile = "config.json";
}

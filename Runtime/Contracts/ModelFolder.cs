namespace OnnxGpt.Contracts;

/// <summary>File names inside an exported model folder (see models/README.md).</summary>
public static class ModelFolder
{
    /// <summary>The graph (and the weights, unless external).</summary>
    public const string ModelFile = "model.onnx";
    /// <summary>The weights as ONNX external data, when they do not go inside the model.</summary>
    public const string ExternalDataFile = "model.onnx.data";
    /// <summary>The model's shape in Hugging Face GPT-2 field names.</summary>
    public const string ConfigFile = "config.json";

    /// <summary>ONNX Runtime GenAI's description of the folder (written by the exporter's GenAiConfig).</summary>
    public const string GenAiConfigFile = "genai_config.json";
}

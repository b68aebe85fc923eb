using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Onnx;

namespace OnnxGpt.Exporter;

/// <summary>How <see cref="GptExporter"/> writes a model folder.</summary>
public sealed record ExportOptions
{
    /// <summary>When the weights go to <c>model.onnx.data</c> beside the model instead of inside it.</summary>
    public ExternalDataMode ExternalData { get; init; } = ExternalDataMode.Auto;

    /// <summary>Graph flavour and weight quantization.</summary>
    public GraphOptions Graph { get; init; } = GraphOptions.Portable;

    /// <summary>Replace an existing, non-empty output folder.</summary>
    public bool Force { get; init; }

    /// <summary>The tokenizer the model uses, recorded in its metadata. Null: none recorded.</summary>
    public TokenizerSpec? Tokenizer { get; init; }

    /// <summary>Folder holding the files named by <see cref="TokenizerSpec.Files"/>; they are copied beside the model.</summary>
    public string? TokenizerSourceFolder { get; init; }

    /// <summary>Generation defaults recorded in the metadata.</summary>
    public GenerationDefaults Generation { get; init; } = new();

    /// <summary>The chat prompt format recorded in the metadata for chat hosts. Null: none recorded (hosts use their default).</summary>
    public ChatTemplateSpec? ChatTemplate { get; init; }

    /// <summary>A line on where the weights came from (preset and seed, checkpoint path, training run).</summary>
    public string? Source { get; init; }
}

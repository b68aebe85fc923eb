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

    /// <summary>
    /// The folder the weights were read from (a checkpoint), if any. The output folder may not be it or contain it,
    /// so that an export never rewrites its own input (<see cref="TokenizerSourceFolder"/> is held to the same rule).
    /// </summary>
    public string? InputFolder { get; init; }

    /// <summary>
    /// Checks everything an export into <paramref name="outputFolder"/> will need before any weight is built or read,
    /// so a bad option fails in milliseconds, not after minutes of work: the graph options (flavour, quantization,
    /// block size, dtype), the generation defaults and chat template, the output folder (not a file, empty unless
    /// <see cref="Force"/>, not the input folder nor one that contains it), and the tokenizer files (each inside
    /// <see cref="TokenizerSourceFolder"/> and a regular file). With <paramref name="config"/>, also that the
    /// tokenizer and the special ids fit its vocabulary. <see cref="GptExporter.Export"/> calls this first too.
    /// </summary>
    /// <exception cref="OnnxGptException">An option is invalid; the message names it (as the CLI flag and the property) and the value.</exception>
    public ExportOptions Validate(string outputFolder, GptConfig? config = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(outputFolder);
        if (!Enum.IsDefined(ExternalData))
        {
            throw new OnnxGptException($"--external-data (ExportOptions.ExternalData) must be auto or always; found {(int)ExternalData}.");
        }

        (Graph ?? throw new OnnxGptException("ExportOptions.Graph must not be null.")).Validate();
        (Generation ?? throw new OnnxGptException("ExportOptions.Generation must not be null.")).Validate("ExportOptions.Generation");
        ChatTemplate?.Validate("ExportOptions.ChatTemplate");
        config?.Validate();
        CheckOutputFolder(outputFolder);
        CheckTokenizer(outputFolder, config);
        return this;
    }

    private void CheckOutputFolder(string outputFolder)
    {
        if (File.Exists(outputFolder) || (InputFile.Exists(outputFolder) && !Directory.Exists(outputFolder)))
        {
            throw new OnnxGptException($"--out '{outputFolder}' is a file; expected a folder to write the model into (a new one, or an empty one).");
        }

        foreach (var (input, what) in new[] { (InputFolder, "the checkpoint folder the weights come from"), (TokenizerSourceFolder, "the tokenizer's source folder") })
        {
            if (input is not null && FolderPaths.IsSameOrInside(outputFolder, input))
            {
                throw new OnnxGptException(
                    $"--out '{outputFolder}' is {(FolderPaths.IsSameOrInside(input, outputFolder) ? "" : "a folder holding ")}{what} ('{input}'); " +
                    "an export would overwrite its own input (such as its config.json). Choose another output folder.");
            }
        }

        if (Directory.Exists(outputFolder) && Directory.EnumerateFileSystemEntries(outputFolder).Any() && !Force)
        {
            throw new OnnxGptException(
                $"output folder '{outputFolder}' already exists and is not empty; pass --force (ExportOptions.Force) to replace the model in it.");
        }
    }

    private void CheckTokenizer(string outputFolder, GptConfig? config)
    {
        if (Tokenizer is not { } tokenizer)
        {
            return;
        }

        if (config is not null && tokenizer.Kind == TokenizerSpec.CharKind && tokenizer.Characters is { } characters
            && characters.Count != config.VocabSize)
        {
            throw new OnnxGptException(
                $"the character tokenizer has {characters.Count} characters but the model's vocabulary has {config.VocabSize} tokens; they must be equal.");
        }

        if (tokenizer.Files is not { Count: > 0 } files)
        {
            return;
        }

        var source = TokenizerSourceFolder
            ?? throw new OnnxGptException("the tokenizer names files but ExportOptions.TokenizerSourceFolder does not say where they are.");
        foreach (var (file, i) in files.Select((f, i) => (f, i)))
        {
            string from = FolderPaths.ResolveInside(source, file, $"the tokenizer description ('files'[{i}])");
            FolderPaths.ResolveInside(outputFolder, file, $"the tokenizer description ('files'[{i}])");
            if (!InputFile.Exists(from))
            {
                throw new OnnxGptException($"tokenizer file '{from}' does not exist; the tokenizer '{tokenizer.Kind}' needs it.");
            }

            InputFile.EnsureRegular(from, "tokenizer file");
        }
    }
}

using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Exporter.Checkpoints;

/// <summary>
/// Loads whatever checkpoint a path is, by what is there: a llama2.c <c>.bin</c> file (<see cref="Llama2cCheckpoint"/>),
/// or a folder with a <c>config.json</c> — a Hugging Face GPT-2 or Llama folder, or one of this project's training
/// runs (<see cref="HfCheckpoint"/>; the config's <c>model_type</c> picks the family). Anything else is refused with
/// what was found and what is supported.
/// </summary>
public static class CheckpointLoader
{
    /// <summary>What <see cref="Detect"/> found at a path.</summary>
    public enum Kind
    {
        /// <summary>A llama2.c checkpoint file.</summary>
        Llama2c,

        /// <summary>A Hugging Face folder (GPT-2 or Llama), or a training run's folder.</summary>
        HuggingFaceFolder,
    }

    /// <summary>The kind of checkpoint at <paramref name="path"/>, or an <see cref="OnnxGptException"/> saying what was found there.</summary>
    public static Kind Detect(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (File.Exists(path))
        {
            if (path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
            {
                return Kind.Llama2c;
            }

            throw new OnnxGptException(
                $"{path}: a checkpoint file must be a llama2.c .bin; for a Hugging Face checkpoint or a training run give its folder (with config.json).");
        }

        if (Directory.Exists(path))
        {
            if (File.Exists(Path.Combine(path, HfCheckpoint.ConfigFile)))
            {
                return Kind.HuggingFaceFolder;
            }

            var found = Directory.EnumerateFileSystemEntries(path).Select(Path.GetFileName).Order(StringComparer.Ordinal).Take(12).ToList();
            throw new OnnxGptException(
                $"{path}: not a checkpoint folder: it has no {HfCheckpoint.ConfigFile} (found: {(found.Count == 0 ? "nothing" : string.Join(", ", found))}). " +
                "Supported: a Hugging Face GPT-2 or Llama folder (config.json + model.safetensors or a sharded index), a training run's folder, " +
                "or a llama2.c .bin file.");
        }

        throw new OnnxGptException($"{path}: no such file or folder; expected a checkpoint folder or a llama2.c .bin file.");
    }

    /// <summary>The config of the checkpoint at <paramref name="path"/>, read (and checked) without loading its weights.</summary>
    public static GptConfig ReadConfig(string path) => Detect(path) switch
    {
        Kind.Llama2c => Llama2cCheckpoint.ReadConfig(path),
        _ => HfCheckpoint.ReadConfig(path),
    };

    /// <summary>The folder a checkpoint's files are in: the folder itself, or the one holding the <c>.bin</c>.</summary>
    public static string Folder(string path) =>
        Detect(path) == Kind.Llama2c ? Path.GetDirectoryName(Path.GetFullPath(path)) ?? "." : path;

    /// <summary>Loads the checkpoint at <paramref name="path"/> (see the class remarks).</summary>
    public static GptWeights Load(string path) => Detect(path) switch
    {
        Kind.Llama2c => Llama2cCheckpoint.Load(path),
        _ => HfCheckpoint.Load(path),
    };
}

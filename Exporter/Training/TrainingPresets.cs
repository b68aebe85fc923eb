using OnnxGpt.Contracts;

namespace OnnxGpt.Training;

/// <summary>
/// Model shapes for training small character-level models on a CPU. The vocabulary size is a placeholder: the trainer
/// sets it to the corpus's character count. Parameter counts are for a 65-character vocabulary (tiny-shakespeare).
/// </summary>
public static class TrainingPresets
{
    private static readonly Dictionary<string, GptConfig> Table = new(StringComparer.OrdinalIgnoreCase)
    {
        // 4 blocks of width 128, 4 heads of 32, 128 positions: 818,048 parameters. The demo model.
        ["char-small"] = new() { VocabSize = 65, ContextLength = 128, Width = 128, Layers = 4, Heads = 4 },
        // 6 blocks of width 192, 6 heads of 32, 256 positions: 2,728,320 parameters.
        ["char-medium"] = new() { VocabSize = 65, ContextLength = 256, Width = 192, Layers = 6, Heads = 6 },
        // 2 blocks of width 32, 2 heads, 32 positions: 29,856 parameters. For tests.
        ["char-tiny"] = new() { VocabSize = 65, ContextLength = 32, Width = 32, Layers = 2, Heads = 2 },
    };

    public static IReadOnlyCollection<string> Names => Table.Keys;

    /// <summary>A training preset, or else an exporter preset (<see cref="GptPresets"/>), with the vocabulary set to <paramref name="vocabSize"/> and no bos/eos.</summary>
    public static GptConfig Get(string name, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocabSize);
        GptConfig config;
        if (Table.TryGetValue(name, out var found))
        {
            config = found;
        }
        else if (GptPresets.Names.Contains(name, StringComparer.OrdinalIgnoreCase))
        {
            config = GptPresets.Get(name);
        }
        else
        {
            throw new OnnxGptException(
                $"Unknown preset '{name}'; the training presets are {string.Join(", ", Table.Keys)} and the model presets {string.Join(", ", GptPresets.Names)}.");
        }

        return config with { VocabSize = vocabSize, BosTokenId = null, EosTokenId = null };
    }
}

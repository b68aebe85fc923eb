namespace OnnxGpt.Contracts;

/// <summary>Named model shapes. Parameter counts are for the tied head, as published.</summary>
public static class GptPresets
{
    private const int Gpt2Vocab = 50257;
    private const int Gpt2Eos = 50256;

    private static GptConfig Gpt2(int width, int layers, int heads) => new()
    {
        VocabSize = Gpt2Vocab, ContextLength = 1024, Width = width, Layers = layers, Heads = heads,
        BosTokenId = Gpt2Eos, EosTokenId = Gpt2Eos,
    };

    private static readonly Dictionary<string, GptConfig> Table = new(StringComparer.OrdinalIgnoreCase)
    {
        ["gpt2"] = Gpt2(768, 12, 12),          // 124,439,808 parameters
        ["gpt2-medium"] = Gpt2(1024, 24, 16),  // 354,823,168
        ["gpt2-large"] = Gpt2(1280, 36, 20),   // 774,030,080
        ["gpt2-xl"] = Gpt2(1600, 48, 25),      // 1,557,611,200
        ["distilgpt2"] = Gpt2(768, 6, 12),     // 81,912,576
        // Small shapes for tests and quick experiments.
        ["tiny"] = new() { VocabSize = 1000, ContextLength = 128, Width = 64, Layers = 2, Heads = 4, BosTokenId = 0, EosTokenId = 0 },
        ["nano"] = new() { VocabSize = 96, ContextLength = 32, Width = 16, Layers = 1, Heads = 1, BosTokenId = 0, EosTokenId = 0 },
    };

    /// <summary>The preset names, in table order.</summary>
    public static IReadOnlyCollection<string> Names => Table.Keys;

    /// <summary>Looks a preset up by name (case-insensitive).</summary>
    public static GptConfig Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return Table.TryGetValue(name, out var config)
            ? config
            : throw new OnnxGptException($"Unknown preset '{name}'; the presets are: {string.Join(", ", Table.Keys)}.");
    }
}

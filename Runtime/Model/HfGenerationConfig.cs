using System.Text.Json;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Model;

/// <summary>
/// A Hugging Face <c>generation_config.json</c>, which Optimum and transformers.js folders carry beside
/// <c>config.json</c>: the sampling defaults, with Transformers' own defaults for the fields it leaves out (in
/// particular <c>do_sample</c> false: greedy), and the begin/end ids, used when no config states them.
/// </summary>
internal static class HfGenerationConfig
{
    /// <summary>The file's name.</summary>
    public const string FileName = "generation_config.json";

    /// <summary>The largest generation_config.json read.</summary>
    private const long MaxFileBytes = 16L << 20;

    /// <summary>Reads <paramref name="path"/>: the defaults it gives, and the ids it states.</summary>
    /// <exception cref="OnnxGptException">Not valid JSON, a field of the wrong type, or a value out of the sampler's range.</exception>
    public static (GenerationDefaults Defaults, StatedShape Ids) Read(string path)
    {
        using var document = JsonInput.ReadFile(path, "generation config", MaxFileBytes);
        var root = JsonInput.Root(document, path);
        if (root.Kind != JsonValueKind.Object)
        {
            throw root.Error("a JSON object at the top level");
        }

        var ours = new GenerationDefaults();
        var defaults = (ours with
        {
            DoSample = root.Get("do_sample")?.GetBoolean() ?? false,
            Temperature = root.Get("temperature")?.GetDouble() ?? 1.0,
            TopK = root.Get("top_k")?.GetInt32() ?? 50,
            TopP = root.Get("top_p")?.GetDouble() ?? 1.0,
            RepetitionPenalty = root.Get("repetition_penalty")?.GetDouble() ?? 1.0,
            MaxNewTokens = root.Get("max_new_tokens")?.GetInt32() ?? ours.MaxNewTokens,
        }).Validate(path);
        var ids = new StatedShape(path)
            .Says(StatedShape.Field.BosTokenId, root.Get("bos_token_id") is { } bos ? StatedShape.FirstInt(bos) : null, "bos_token_id")
            .SaysEnds(root.Get("eos_token_id"), "eos_token_id");
        return (defaults, ids);
    }
}

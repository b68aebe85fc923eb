using System.Text.Json;
using System.Text.Json.Serialization;

namespace OnnxGpt.Model;

/// <summary>Generation defaults a model carries in its metadata; a host's options override them.</summary>
public sealed record GenerationDefaults
{
    [JsonPropertyName("max_new_tokens")]
    public int MaxNewTokens { get; init; } = 64;

    [JsonPropertyName("do_sample")]
    public bool DoSample { get; init; } = true;

    [JsonPropertyName("temperature")]
    public double Temperature { get; init; } = 1.0;

    [JsonPropertyName("top_k")]
    public int TopK { get; init; } = 50;

    [JsonPropertyName("top_p")]
    public double TopP { get; init; } = 1.0;

    [JsonPropertyName("repetition_penalty")]
    public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary>A prompt that suits the model, used by demos.</summary>
    [JsonPropertyName("prompt")]
    public string? Prompt { get; init; }

    public string ToJson() => JsonSerializer.Serialize(this);

    public static GenerationDefaults FromJson(string json, string source = "generation metadata")
    {
        try
        {
            return JsonSerializer.Deserialize<GenerationDefaults>(json)
                ?? throw new OnnxGptException($"{source}: expected a JSON object, found null.");
        }
        catch (JsonException e)
        {
            throw new OnnxGptException($"{source}: not valid generation defaults ({e.Message}).", e);
        }
    }
}

using System.Text.Json;
using System.Text.Json.Serialization;

namespace OnnxGpt.Contracts;

/// <summary>Generation defaults a model carries in its metadata; a host's options override them.</summary>
public sealed record GenerationDefaults
{
    /// <summary>Most tokens to generate after the prompt.</summary>
    [JsonPropertyName("max_new_tokens")]
    public int MaxNewTokens { get; init; } = 64;

    /// <summary>Sample from the distribution; false means greedy decoding.</summary>
    [JsonPropertyName("do_sample")]
    public bool DoSample { get; init; } = true;

    /// <summary>Sampling temperature; 0 means greedy.</summary>
    [JsonPropertyName("temperature")]
    public double Temperature { get; init; } = 1.0;

    /// <summary>Keep only the k most likely tokens; 0 turns it off.</summary>
    [JsonPropertyName("top_k")]
    public int TopK { get; init; } = 50;

    /// <summary>Nucleus sampling threshold; 1 turns it off.</summary>
    [JsonPropertyName("top_p")]
    public double TopP { get; init; } = 1.0;

    /// <summary>Hugging Face repetition penalty; 1 turns it off.</summary>
    [JsonPropertyName("repetition_penalty")]
    public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary>A prompt that suits the model, used by demos.</summary>
    [JsonPropertyName("prompt")]
    public string? Prompt { get; init; }

    /// <summary>These defaults as JSON, as stored in the model's metadata.</summary>
    public string ToJson() => JsonSerializer.Serialize(this);

    /// <summary>Reads defaults stored as JSON; <paramref name="source"/> names where they came from in error messages.</summary>
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

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

    /// <summary>Reads and validates defaults stored as JSON (through <see cref="JsonInput"/>); <paramref name="source"/> names where they came from in error messages.</summary>
    /// <exception cref="OnnxGptException">The JSON is malformed, has duplicate keys, or a value is out of range (see <see cref="Validate"/>).</exception>
    public static GenerationDefaults FromJson(string json, string source = "generation metadata") =>
        JsonInput.Deserialize<GenerationDefaults>(json, source).Validate(source);

    /// <summary>
    /// Checks every default against the range a sampler accepts: <c>max_new_tokens</c> &gt;= 0, <c>temperature</c>
    /// finite and &gt;= 0, <c>top_k</c> &gt;= 0, <c>top_p</c> in (0, 1], <c>repetition_penalty</c> finite and &gt; 0.
    /// A model carrying defaults outside them is refused at load, not when the first request uses them.
    /// </summary>
    /// <exception cref="OnnxGptException">A value is out of range; the message names <paramref name="source"/> and the field.</exception>
    public GenerationDefaults Validate(string source = "generation defaults")
    {
        static OnnxGptException Bad(string source, string field, string expected, object found) =>
            new($"{source}: '{field}' must be {expected}; found {found}.");

        if (MaxNewTokens < 0)
        {
            throw Bad(source, "max_new_tokens", "0 or more", MaxNewTokens);
        }

        if (!(Temperature >= 0) || !double.IsFinite(Temperature))
        {
            throw Bad(source, "temperature", "a finite number, 0 or more (0 is greedy)", Temperature);
        }

        if (TopK < 0)
        {
            throw Bad(source, "top_k", "0 (off) or more", TopK);
        }

        if (!(TopP > 0 && TopP <= 1))
        {
            throw Bad(source, "top_p", "in (0, 1] (1 is off)", TopP);
        }

        if (!(RepetitionPenalty > 0) || !double.IsFinite(RepetitionPenalty))
        {
            throw Bad(source, "repetition_penalty", "a finite number above 0 (1 is off)", RepetitionPenalty);
        }

        return this;
    }
}

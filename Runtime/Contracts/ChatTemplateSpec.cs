using System.Text.Json;
using System.Text.Json.Serialization;

namespace OnnxGpt.Contracts;

/// <summary>
/// How a conversation becomes one prompt for a model that was not chat-tuned: a text per message, chosen by role,
/// with <c>{content}</c> (and, in <see cref="OtherMessage"/>, <c>{role}</c>) replaced; then <see cref="GenerationPrompt"/>,
/// where the model's reply begins. The reply ends at any of <see cref="StopSequences"/>. A model may carry its own
/// in its metadata (<see cref="MetadataKeys.ChatTemplate"/>, this record as JSON); <see cref="Plain"/> is the default.
/// This is a plain text format, not the Jinja templates of Hugging Face's <c>tokenizer_config.json</c>.
/// </summary>
public sealed record ChatTemplateSpec
{
    /// <summary>The placeholder for a message's text.</summary>
    public const string ContentPlaceholder = "{content}";

    /// <summary>The placeholder for a message's role, in <see cref="OtherMessage"/>.</summary>
    public const string RolePlaceholder = "{role}";

    /// <summary>Text before the first message (e.g. a document marker); empty by default.</summary>
    [JsonPropertyName("prefix")]
    public string Prefix { get; init; } = "";

    /// <summary>A system message.</summary>
    [JsonPropertyName("system")]
    public string SystemMessage { get; init; } = "System: {content}\n";

    /// <summary>A user message.</summary>
    [JsonPropertyName("user")]
    public string UserMessage { get; init; } = "User: {content}\n";

    /// <summary>An earlier reply of the assistant.</summary>
    [JsonPropertyName("assistant")]
    public string AssistantMessage { get; init; } = "Assistant: {content}\n";

    /// <summary>A message of any other role (e.g. <c>tool</c>).</summary>
    [JsonPropertyName("other")]
    public string OtherMessage { get; init; } = "{role}: {content}\n";

    /// <summary>Text after the last message, where the model's reply begins.</summary>
    [JsonPropertyName("generation_prompt")]
    public string GenerationPrompt { get; init; } = "Assistant:";

    /// <summary>Text that ends the reply when the model writes it (it starts writing the next turn); not part of the reply.</summary>
    [JsonPropertyName("stop")]
    public IReadOnlyList<string> StopSequences { get; init; } = ["\nUser:", "\nAssistant:", "\nSystem:"];

    /// <summary>
    /// The default: <c>System: ...</c>, <c>User: ...</c>, <c>Assistant: ...</c>, one message per line, ending with
    /// <c>Assistant:</c>; the reply stops where the model starts a new <c>User:</c>, <c>Assistant:</c> or
    /// <c>System:</c> line.
    /// </summary>
    public static ChatTemplateSpec Plain { get; } = new();

    /// <summary>Checks that every message text has a <c>{content}</c> placeholder and no stop sequence is empty.</summary>
    /// <exception cref="OnnxGptException">A field is missing or malformed; the message names it and <paramref name="source"/>.</exception>
    public void Validate(string source = "chat template")
    {
        foreach (var (name, text) in new[] { ("system", SystemMessage), ("user", UserMessage), ("assistant", AssistantMessage), ("other", OtherMessage) })
        {
            if (text is null || !text.Contains(ContentPlaceholder, StringComparison.Ordinal))
            {
                throw new OnnxGptException($"{source}: '{name}' must contain {ContentPlaceholder}; found {(text is null ? "null" : $"'{text}'")}.");
            }
        }

        if (Prefix is null || GenerationPrompt is null)
        {
            throw new OnnxGptException($"{source}: '{(Prefix is null ? "prefix" : "generation_prompt")}' must be a string (may be empty); found null.");
        }

        if (StopSequences is null)
        {
            throw new OnnxGptException($"{source}: 'stop' must be a list of strings (may be empty); found null.");
        }

        for (int i = 0; i < StopSequences.Count; i++)
        {
            if (string.IsNullOrEmpty(StopSequences[i]))
            {
                throw new OnnxGptException($"{source}: 'stop'[{i}] is empty; a stop sequence needs at least one character.");
            }
        }
    }

    /// <summary>This template as compact JSON, as stored in the model's metadata.</summary>
    public string ToJson() => JsonSerializer.Serialize(this);

    /// <summary>Reads and validates a template stored as JSON; missing fields take the <see cref="Plain"/> defaults.</summary>
    /// <exception cref="OnnxGptException">The JSON is malformed or a field is invalid; the message names <paramref name="source"/>.</exception>
    public static ChatTemplateSpec FromJson(string json, string source = "chat template metadata")
    {
        var spec = JsonInput.Deserialize<ChatTemplateSpec>(json, source);
        spec.Validate(source);
        return spec;
    }
}

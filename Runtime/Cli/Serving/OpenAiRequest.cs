using System.Text.Json;
using Microsoft.Extensions.AI;
using OnnxGpt.Contracts;

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// A <c>/v1/chat/completions</c> or <c>/v1/completions</c> request, read strictly from its JSON: every field this
/// server uses is type- and range-checked, and a bad one is an <see cref="OpenAiError"/> naming it in <c>param</c>.
/// Fields it does not use (<c>user</c>, <c>metadata</c>, <c>store</c>, ...) are ignored; ones that would change the
/// answer but are not supported are listed in <see cref="Ignored"/> for the log.
/// </summary>
internal sealed class OpenAiRequest
{
    /// <summary>The most stop sequences a request may give.</summary>
    public const int MaxStopSequences = 16;

    private OpenAiRequest()
    {
    }

    public required string Model { get; init; }

    /// <summary>Chat: the conversation; null for a completion.</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; init; }

    /// <summary>Completion: the prompt; null for chat.</summary>
    public string? Prompt { get; init; }

    public bool Stream { get; init; }

    public bool IncludeUsage { get; init; }

    /// <summary>
    /// Streaming: end with a chunk that also carries <c>timings</c>, where the time to the first token went (an
    /// extension, <c>stream_options.include_timings</c>, as llama.cpp's server reports its own timings).
    /// </summary>
    public bool IncludeTimings { get; init; }

    /// <summary>Completion: return the prompt before the generated text.</summary>
    public bool Echo { get; init; }

    public required ChatOptions Options { get; init; }

    public List<string> Ignored { get; } = [];

    /// <summary>
    /// Reads a request; <paramref name="chat"/> picks the chat or completion shape. <c>max_tokens</c> may not exceed
    /// <paramref name="maxTokensLimit"/>; without it, <paramref name="defaultMaxTokens"/> (null: the client's default).
    /// </summary>
    /// <exception cref="OpenAiError">A field is missing, of the wrong type or out of range (400).</exception>
    public static OpenAiRequest Read(JsonElement root, bool chat, int maxTokensLimit, int? defaultMaxTokens)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw OpenAiError.BadRequest($"the request body must be a JSON object; found {Kind(root)}.");
        }

        string model = RequiredString(root, "model");
        var options = new ChatOptions();
        int? maxTokens = Int(root, chat && root.TryGetProperty("max_completion_tokens", out _) ? "max_completion_tokens" : "max_tokens");
        if (maxTokens is < 0)
        {
            throw OpenAiError.BadRequest($"max_tokens must be 0 or more; found {maxTokens}.", "max_tokens", "invalid_value");
        }

        if (maxTokens > maxTokensLimit)
        {
            throw OpenAiError.BadRequest($"max_tokens is {maxTokens}, more than this server's limit of {maxTokensLimit}.", "max_tokens", "invalid_value");
        }

        options.MaxOutputTokens = maxTokens ?? defaultMaxTokens;
        options.Temperature = (float?)Number(root, "temperature", 0, 2);
        options.TopP = (float?)Number(root, "top_p", 0, 1);
        if (options.TopP == 0)
        {
            throw OpenAiError.BadRequest("top_p must be more than 0 (1 turns nucleus sampling off); found 0.", "top_p", "invalid_value");
        }

        options.TopK = Int(root, "top_k");
        if (options.TopK is < 0)
        {
            throw OpenAiError.BadRequest($"top_k must be 0 (off) or more; found {options.TopK}.", "top_k", "invalid_value");
        }

        options.PresencePenalty = (float?)Number(root, "presence_penalty", -2, 2);
        options.FrequencyPenalty = (float?)Number(root, "frequency_penalty", -2, 2);
        if (Number(root, "repetition_penalty", double.Epsilon, 100) is { } penalty)
        {
            (options.AdditionalProperties ??= [])["repetition_penalty"] = penalty;
        }

        options.Seed = Long(root, "seed");
        options.ResponseFormat = ResponseFormat(root);
        options.StopSequences = Stops(root);
        if (Int(root, "n") is { } n && n != 1)
        {
            throw OpenAiError.BadRequest($"n must be 1: this server generates one choice per request; found {n}.", "n", "invalid_value");
        }

        bool stream = Bool(root, "stream") ?? false;
        bool includeUsage = false, includeTimings = false;
        if (root.TryGetProperty("stream_options", out var streamOptions) && streamOptions.ValueKind != JsonValueKind.Null)
        {
            if (streamOptions.ValueKind != JsonValueKind.Object)
            {
                throw OpenAiError.BadRequest($"stream_options must be an object; found {Kind(streamOptions)}.", "stream_options");
            }

            includeUsage = Bool(streamOptions, "include_usage", "stream_options.include_usage") ?? false;
            includeTimings = Bool(streamOptions, "include_timings", "stream_options.include_timings") ?? false;
        }

        var request = chat
            ? new OpenAiRequest { Model = model, Messages = ReadMessages(root), Stream = stream, IncludeUsage = includeUsage, IncludeTimings = includeTimings, Options = options }
            : new OpenAiRequest { Model = model, Prompt = ReadPrompt(root), Stream = stream, IncludeUsage = includeUsage, IncludeTimings = includeTimings, Options = options, Echo = Bool(root, "echo") ?? false };
        foreach (var name in new[] { "tools", "functions", "tool_choice", "logit_bias", "suffix" })
        {
            if (root.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null)
            {
                request.Ignored.Add(name);
            }
        }

        if (root.TryGetProperty("logprobs", out var logprobs) && logprobs.ValueKind is not (JsonValueKind.Null or JsonValueKind.False))
        {
            request.Ignored.Add("logprobs");
        }

        if (Int(root, "best_of") is > 1)
        {
            throw OpenAiError.BadRequest("best_of must be 1: this server generates one choice per request.", "best_of", "invalid_value");
        }

        return request;
    }

    /// <summary>
    /// OpenAI's <c>response_format</c>: <c>{"type":"text"}</c> (free text), <c>{"type":"json_object"}</c> (any JSON
    /// value) or <c>{"type":"json_schema","json_schema":{"name":...,"schema":{...},"description":...,"strict":...}}</c>.
    /// </summary>
    private static ChatResponseFormat? ResponseFormat(JsonElement root)
    {
        if (!root.TryGetProperty("response_format", out var format) || format.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (format.ValueKind != JsonValueKind.Object)
        {
            throw OpenAiError.BadRequest($"response_format must be an object with a type; found {Kind(format)}.", "response_format");
        }

        string type = RequiredString(format, "type", "response_format.type");
        switch (type)
        {
            case "text":
                return ChatResponseFormat.Text;
            case "json_object":
                return ChatResponseFormat.Json;
            case "json_schema":
                if (!format.TryGetProperty("json_schema", out var spec) || spec.ValueKind != JsonValueKind.Object)
                {
                    throw OpenAiError.BadRequest("response_format.json_schema must be an object with a name and a schema.", "response_format.json_schema");
                }

                string name = RequiredString(spec, "name", "response_format.json_schema.name");
                string? description = spec.TryGetProperty("description", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
                if (!spec.TryGetProperty("schema", out var schema) || schema.ValueKind is not (JsonValueKind.Object or JsonValueKind.True))
                {
                    throw OpenAiError.BadRequest("response_format.json_schema.schema must be a JSON Schema object.", "response_format.json_schema.schema");
                }

                return ChatResponseFormat.ForJsonSchema(schema.Clone(), name, description);
            default:
                throw OpenAiError.BadRequest($"response_format.type must be text, json_object or json_schema; found '{type}'.", "response_format.type", "invalid_value");
        }
    }

    private static List<ChatMessage> ReadMessages(JsonElement root)
    {
        if (!root.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
        {
            throw OpenAiError.BadRequest("messages must be a non-empty array of {role, content} objects.", "messages");
        }

        var list = new List<ChatMessage>();
        int i = 0;
        foreach (var message in messages.EnumerateArray())
        {
            string at = $"messages[{i}]";
            if (message.ValueKind != JsonValueKind.Object)
            {
                throw OpenAiError.BadRequest($"{at} must be an object with role and content; found {Kind(message)}.", at);
            }

            string roleName = RequiredString(message, "role", $"{at}.role");
            ChatRole role = roleName switch
            {
                "system" or "developer" => ChatRole.System,
                "user" => ChatRole.User,
                "assistant" => ChatRole.Assistant,
                "tool" => ChatRole.Tool,
                _ => throw OpenAiError.BadRequest($"{at}.role must be system, developer, user, assistant or tool; found '{roleName}'.", $"{at}.role", "invalid_value"),
            };
            list.Add(new ChatMessage(role, Content(message, $"{at}.content")));
            i++;
        }

        return list;
    }

    /// <summary>A message's content: a string, an array of text parts, or null (an assistant turn that only called tools).</summary>
    private static string Content(JsonElement message, string at)
    {
        if (!message.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null)
        {
            return string.Empty;
        }

        if (content.ValueKind == JsonValueKind.String)
        {
            return content.GetString()!;
        }

        if (content.ValueKind != JsonValueKind.Array)
        {
            throw OpenAiError.BadRequest($"{at} must be a string or an array of text parts; found {Kind(content)}.", at);
        }

        var text = new System.Text.StringBuilder();
        int j = 0;
        foreach (var part in content.EnumerateArray())
        {
            string partAt = $"{at}[{j++}]";
            string type = part.ValueKind == JsonValueKind.Object ? RequiredString(part, "type", $"{partAt}.type") : "";
            if (type != "text")
            {
                throw OpenAiError.BadRequest($"{partAt} must be a text part ({{\"type\":\"text\",\"text\":...}}): this model reads text only.", partAt, "unsupported_content");
            }

            text.Append(RequiredString(part, "text", $"{partAt}.text"));
        }

        return text.ToString();
    }

    private static string ReadPrompt(JsonElement root)
    {
        if (!root.TryGetProperty("prompt", out var prompt) || prompt.ValueKind == JsonValueKind.Null)
        {
            throw OpenAiError.BadRequest("prompt is required: a string (or an array holding one string).", "prompt");
        }

        if (prompt.ValueKind == JsonValueKind.String)
        {
            return prompt.GetString()!;
        }

        if (prompt.ValueKind == JsonValueKind.Array && prompt.GetArrayLength() == 1 && prompt[0].ValueKind == JsonValueKind.String)
        {
            return prompt[0].GetString()!;
        }

        throw OpenAiError.BadRequest(
            $"prompt must be a string or an array holding one string (this server completes one prompt per request, as text); found {Kind(prompt)}.", "prompt");
    }

    private static List<string>? Stops(JsonElement root)
    {
        if (!root.TryGetProperty("stop", out var stop) || stop.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (stop.ValueKind == JsonValueKind.String)
        {
            return string.IsNullOrEmpty(stop.GetString()) ? null : [stop.GetString()!];
        }

        if (stop.ValueKind != JsonValueKind.Array || stop.GetArrayLength() > MaxStopSequences
            || stop.EnumerateArray().Any(s => s.ValueKind != JsonValueKind.String || s.GetString()!.Length == 0))
        {
            throw OpenAiError.BadRequest($"stop must be a non-empty string or an array of at most {MaxStopSequences} non-empty strings.", "stop");
        }

        return [.. stop.EnumerateArray().Select(s => s.GetString()!)];
    }

    private static string RequiredString(JsonElement obj, string name, string? param = null)
    {
        param ??= name;
        if (!obj.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.String)
        {
            throw OpenAiError.BadRequest(
                value.ValueKind == JsonValueKind.Undefined ? $"{param} is required." : $"{param} must be a string; found {Kind(value)}.", param);
        }

        return value.GetString()!;
    }

    private static double? Number(JsonElement obj, string name, double min, double max)
    {
        if (!obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out double number))
        {
            throw OpenAiError.BadRequest($"{name} must be a number; found {Kind(value)}.", name);
        }

        if (!(number >= min && number <= max))
        {
            throw OpenAiError.BadRequest($"{name} must be between {min} and {max}; found {number}.", name, "invalid_value");
        }

        return number;
    }

    private static int? Int(JsonElement obj, string name)
    {
        if (!obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int number))
        {
            return number;
        }

        throw OpenAiError.BadRequest($"{name} must be an integer; found {Kind(value)} {value.GetRawText()}.", name);
    }

    private static long? Long(JsonElement obj, string name)
    {
        if (!obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long number))
        {
            return number;
        }

        throw OpenAiError.BadRequest($"{name} must be a 64-bit integer; found {Kind(value)} {value.GetRawText()}.", name);
    }

    private static bool? Bool(JsonElement obj, string name, string? param = null)
    {
        if (!obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw OpenAiError.BadRequest($"{param ?? name} must be true or false; found {Kind(value)}.", param ?? name),
        };
    }

    private static string Kind(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "nothing",
    };
}

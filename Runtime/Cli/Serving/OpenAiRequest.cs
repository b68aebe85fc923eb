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

    /// <summary>Completion: the prompts (a string, a batch of strings, token ids or a batch of them); null for chat.</summary>
    public IReadOnlyList<CompletionPrompt>? Prompts { get; init; }

    /// <summary>Choices per prompt (OpenAI's <c>n</c>).</summary>
    public int N { get; init; } = 1;

    /// <summary>
    /// Completion: candidates generated per prompt, of which the <see cref="N"/> best are returned (OpenAI's
    /// <c>best_of</c>: by log-probability per token when sampling; the beam width with <see cref="UseBeamSearch"/>).
    /// </summary>
    public int BestOf { get; init; } = 1;

    /// <summary>Completion: beam search (vLLM's extra field <c>use_beam_search</c>).</summary>
    public bool UseBeamSearch { get; init; }

    /// <summary>Completion: <c>logprobs</c> k (alternatives per token, legacy shape); chat: <c>top_logprobs</c> when <c>logprobs</c> is true; null: none.</summary>
    public int? LogProbs { get; init; }

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
        int n = Int(root, "n") ?? 1;
        if (n is < 1 or > MaxChoices)
        {
            throw OpenAiError.BadRequest($"n must be between 1 and {MaxChoices}; found {n}.", "n", "invalid_value");
        }

        int bestOf = chat ? n : Int(root, "best_of") ?? n;
        if (bestOf < n || bestOf > MaxChoices)
        {
            throw OpenAiError.BadRequest($"best_of must be between n ({n}) and {MaxChoices}; found {bestOf}.", "best_of", "invalid_value");
        }

        bool beams = !chat && (Bool(root, "use_beam_search") ?? false);
        if (!chat)
        {
            ReadBeamFields(root, options, beams, bestOf);
        }

        if (Int(root, "no_repeat_ngram_size") is { } ngram)
        {
            (options.AdditionalProperties ??= [])["no_repeat_ngram_size"] = ngram >= 0 ? ngram
                : throw OpenAiError.BadRequest($"no_repeat_ngram_size must be 0 (off) or more; found {ngram}.", "no_repeat_ngram_size", "invalid_value");
        }

        if (LogitBias(root) is { } bias)
        {
            (options.AdditionalProperties ??= [])["logit_bias"] = bias;
        }

        int? logprobs = chat ? ChatLogProbs(root) : CompletionLogProbs(root);
        if (logprobs is { } k)
        {
            (options.AdditionalProperties ??= [])["top_logprobs"] = k;
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

        if (stream && !chat && (beams || bestOf > n))
        {
            throw OpenAiError.BadRequest(beams ? "use_beam_search cannot be streamed: the beams are decided at the end." : "best_of above n cannot be streamed (as OpenAI's API).",
                beams ? "use_beam_search" : "best_of", "invalid_value");
        }

        var request = chat
            ? new OpenAiRequest { Model = model, Messages = ReadMessages(root), Stream = stream, IncludeUsage = includeUsage, IncludeTimings = includeTimings, Options = options, LogProbs = logprobs, N = n, BestOf = n }
            : new OpenAiRequest
            {
                Model = model, Prompts = ReadPrompts(root), Stream = stream, IncludeUsage = includeUsage, IncludeTimings = includeTimings, Options = options, Echo = Bool(root, "echo") ?? false,
                N = n, BestOf = bestOf, UseBeamSearch = beams, LogProbs = logprobs,
            };
        foreach (var name in new[] { "tools", "functions", "tool_choice", "suffix" })
        {
            if (root.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null)
            {
                request.Ignored.Add(name);
            }
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

    /// <summary>The most choices (n, best_of) a request may ask for.</summary>
    public const int MaxChoices = 16;

    /// <summary>
    /// vLLM's beam-search fields on <c>/v1/completions</c>: <c>use_beam_search</c> with <c>best_of</c> (else <c>n</c>)
    /// beams, <c>length_penalty</c>, <c>early_stopping</c> (true, false or "never", as vLLM's earlier releases and
    /// Hugging Face take it).
    /// </summary>
    private static void ReadBeamFields(JsonElement root, ChatOptions options, bool beams, int bestOf)
    {
        double? lengthPenalty = Number(root, "length_penalty", -10, 10);
        JsonElement early = root.TryGetProperty("early_stopping", out var e) ? e : default;
        if (!beams)
        {
            if (lengthPenalty is not null || early.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null))
            {
                throw OpenAiError.BadRequest("length_penalty and early_stopping apply to beam search: add \"use_beam_search\": true.", lengthPenalty is not null ? "length_penalty" : "early_stopping", "invalid_value");
            }

            return;
        }

        if (bestOf < 2)
        {
            throw OpenAiError.BadRequest("use_beam_search needs at least 2 beams: set best_of (or n) to 2 or more.", "best_of", "invalid_value");
        }

        var extra = options.AdditionalProperties ??= [];
        extra["num_beams"] = bestOf;
        if (lengthPenalty is { } lp)
        {
            extra["length_penalty"] = lp;
        }

        switch (early.ValueKind)
        {
            case JsonValueKind.True or JsonValueKind.False:
                extra["early_stopping"] = early.ValueKind == JsonValueKind.True;
                break;
            case JsonValueKind.String when early.GetString() == "never":
                extra["early_stopping"] = "never";
                break;
            case JsonValueKind.Undefined or JsonValueKind.Null:
                break;
            default:
                throw OpenAiError.BadRequest($"early_stopping must be true, false or \"never\"; found {Kind(early)}.", "early_stopping", "invalid_value");
        }
    }

    /// <summary>OpenAI's logit_bias: an object of token ids (as keys) to numbers in [−100, 100].</summary>
    private static Dictionary<int, double>? LogitBias(JsonElement root)
    {
        if (!root.TryGetProperty("logit_bias", out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw OpenAiError.BadRequest($"logit_bias must be an object of token ids to numbers; found {Kind(value)}.", "logit_bias");
        }

        var bias = new Dictionary<int, double>();
        foreach (var entry in value.EnumerateObject())
        {
            if (!int.TryParse(entry.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int token))
            {
                throw OpenAiError.BadRequest($"logit_bias keys must be token ids; found '{entry.Name}'.", "logit_bias", "invalid_value");
            }

            if (entry.Value.ValueKind != JsonValueKind.Number || !(entry.Value.GetDouble() is >= -100 and <= 100))
            {
                throw OpenAiError.BadRequest($"logit_bias[\"{entry.Name}\"] must be a number between -100 and 100; found {entry.Value.GetRawText()}.", "logit_bias", "invalid_value");
            }

            bias[token] = entry.Value.GetDouble();
        }

        return bias;
    }

    /// <summary>Chat: <c>logprobs</c> true/false and <c>top_logprobs</c> 0..20 (which needs logprobs).</summary>
    private static int? ChatLogProbs(JsonElement root)
    {
        bool on = Bool(root, "logprobs") ?? false;
        int? top = Int(root, "top_logprobs");
        if (top is { } k && (k < 0 || k > 20))
        {
            throw OpenAiError.BadRequest($"top_logprobs must be between 0 and 20; found {k}.", "top_logprobs", "invalid_value");
        }

        if (top is not null && !on)
        {
            throw OpenAiError.BadRequest("top_logprobs needs \"logprobs\": true.", "top_logprobs", "invalid_value");
        }

        return on ? top ?? 0 : null;
    }

    /// <summary>Completions: <c>logprobs</c> k, 0..20 alternatives per token (OpenAI's legacy field; its API allows up to 5).</summary>
    private static int? CompletionLogProbs(JsonElement root)
    {
        if (Int(root, "logprobs") is not { } k)
        {
            return null;
        }

        return k is >= 0 and <= 20 ? k : throw OpenAiError.BadRequest($"logprobs must be between 0 and 20; found {k}.", "logprobs", "invalid_value");
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

    /// <summary>The most prompts one completion request may batch.</summary>
    public const int MaxPrompts = 16;

    /// <summary>OpenAI's four prompt shapes: a string, an array of strings, an array of token ids, an array of such arrays.</summary>
    private static List<CompletionPrompt> ReadPrompts(JsonElement root)
    {
        const string Shapes = "a string, an array of strings, an array of token ids or an array of arrays of token ids";
        if (!root.TryGetProperty("prompt", out var prompt) || prompt.ValueKind == JsonValueKind.Null)
        {
            throw OpenAiError.BadRequest($"prompt is required: {Shapes}.", "prompt");
        }

        if (prompt.ValueKind == JsonValueKind.String)
        {
            return [new CompletionPrompt(prompt.GetString()!, null)];
        }

        if (prompt.ValueKind != JsonValueKind.Array || prompt.GetArrayLength() == 0)
        {
            throw OpenAiError.BadRequest($"prompt must be {Shapes}; found {Kind(prompt)}{(prompt.ValueKind == JsonValueKind.Array ? " (empty)" : "")}.", "prompt");
        }

        if (prompt[0].ValueKind == JsonValueKind.Number)
        {
            return [new CompletionPrompt(null, TokenIds(prompt, "prompt"))];
        }

        if (prompt.GetArrayLength() > MaxPrompts)
        {
            throw OpenAiError.BadRequest($"prompt holds {prompt.GetArrayLength()} prompts; this server takes at most {MaxPrompts} in one request.", "prompt", "invalid_value");
        }

        var list = new List<CompletionPrompt>();
        int i = 0;
        foreach (var item in prompt.EnumerateArray())
        {
            string at = $"prompt[{i++}]";
            list.Add(item.ValueKind switch
            {
                JsonValueKind.String => new CompletionPrompt(item.GetString()!, null),
                JsonValueKind.Array when item.GetArrayLength() > 0 => new CompletionPrompt(null, TokenIds(item, at)),
                _ => throw OpenAiError.BadRequest($"{at} must be a string or a non-empty array of token ids ({Shapes}); found {Kind(item)}.", at),
            });
        }

        return list;
    }

    private static int[] TokenIds(JsonElement array, string at)
    {
        var ids = new int[array.GetArrayLength()];
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out ids[i]) || ids[i] < 0)
            {
                throw OpenAiError.BadRequest($"{at}[{i}] must be a token id (a whole number >= 0); found {Kind(item)} {item.GetRawText()}.", at);
            }

            i++;
        }

        return ids;
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

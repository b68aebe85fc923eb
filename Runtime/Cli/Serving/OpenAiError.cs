using System.Text.Json.Nodes;

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// A request the server refuses, answered in OpenAI's error shape:
/// <c>{"error":{"message":...,"type":...,"param":...,"code":...}}</c> with <see cref="Status"/>.
/// </summary>
internal sealed class OpenAiError(int status, string message, string? param = null, string? code = null, string type = OpenAiError.InvalidRequest)
    : Exception(message)
{
    public const string InvalidRequest = "invalid_request_error";
    public const string ServerError = "server_error";

    public int Status { get; } = status;

    public string? Param { get; } = param;

    public string? Code { get; } = code;

    public string Type { get; } = type;

    public static OpenAiError BadRequest(string message, string? param = null, string? code = null) => new(400, message, param, code);

    public JsonObject ToJson() => Body(Message, Type, Param, Code);

    public static JsonObject Body(string message, string type, string? param, string? code) => new()
    {
        ["error"] = new JsonObject
        {
            ["message"] = message,
            ["type"] = type,
            ["param"] = param,
            ["code"] = code,
        },
    };
}

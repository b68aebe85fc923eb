namespace OnnxGpt.Cli.Serving;

/// <summary>One prompt of a <c>/v1/completions</c> request: text to encode, or token ids as given.</summary>
/// <param name="Text">The prompt as text, or null.</param>
/// <param name="Tokens">The prompt as token ids, or null.</param>
internal sealed record CompletionPrompt(string? Text, int[]? Tokens);

using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace OnnxGpt.Bench.Load;

/// <summary>One streaming completion request over HTTP, timed piece by piece.</summary>
public static class StreamingClient
{
    /// <param name="http">The client, addressed to the server.</param>
    /// <param name="clock">The run's clock (times are seconds on it).</param>
    /// <param name="prompt">Which prompt (for the record).</param>
    /// <param name="text">The prompt.</param>
    /// <param name="maxTokens">Tokens to generate.</param>
    /// <param name="onPiece">Called with the count of pieces so far, as each piece of text arrives.</param>
    /// <param name="cancellationToken">Stops reading (and so the request).</param>
    /// <param name="timings">Ask the server for its timings of the first token (<c>stream_options.include_timings</c>).</param>
    public static async Task<ClientRun> RunAsync(HttpClient http, Stopwatch clock, int prompt, string text, int maxTokens, Action<int>? onPiece = null,
        CancellationToken cancellationToken = default, bool timings = false)
    {
        string body = JsonSerializer.Serialize(new
        {
            model = "bench",
            prompt = text,
            max_tokens = maxTokens,
            temperature = 0,
            stream = true,
            stream_options = new { include_usage = true, include_timings = timings },
        });
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        double submitted = clock.Elapsed.TotalSeconds, first = double.NaN, last = double.NaN;
        var gaps = new List<double>();
        var generated = new StringBuilder();
        int tokens = 0, pieces = 0;
        Dictionary<string, double>? serverTimings = null;
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"the server answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false)}");
        }

        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false));
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            if (!line.StartsWith("data: {", StringComparison.Ordinal))
            {
                continue;
            }

            double now = clock.Elapsed.TotalSeconds;
            using var chunk = JsonDocument.Parse(line.AsMemory(6));
            var root = chunk.RootElement;
            if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
            {
                tokens = usage.GetProperty("completion_tokens").GetInt32();
            }

            if (root.TryGetProperty("timings", out var reported) && reported.ValueKind == JsonValueKind.Object)
            {
                serverTimings = reported.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.Number).ToDictionary(p => p.Name, p => p.Value.GetDouble());
            }

            if (root.GetProperty("choices") is { ValueKind: JsonValueKind.Array } choices && choices.GetArrayLength() > 0
                && choices[0].GetProperty("text").GetString() is { Length: > 0 } piece)
            {
                generated.Append(piece);
                if (double.IsNaN(first))
                {
                    first = now;
                }
                else
                {
                    gaps.Add(now - last);
                }

                last = now;
                onPiece?.Invoke(++pieces);
            }
        }

        return new ClientRun(prompt, submitted, first, last, gaps, tokens, generated.ToString(), serverTimings);
    }
}

using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.WebUtilities;

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// Kestrel answers some malformed requests itself, before any of our code runs (a bad request line or header: 400;
/// a URL over its limit: 414; headers over their limit: 431; headers that trickle in: 408), with an empty body. This
/// connection filter gives those answers OpenAI's error body. It recognises them by what only they look like: a
/// response head that ends the bytes written so far, has <c>Content-Length: 0</c> and <c>Connection: close</c>, and
/// no content type (every response of ours has one). Everything else passes through unchanged.
/// </summary>
internal static class KestrelErrorBodies
{
    private static readonly byte[] StatusLineStart = "HTTP/1.1 "u8.ToArray();
    private static readonly byte[] HeadEnd = "\r\n\r\n"u8.ToArray();

    /// <summary>The connection middleware: Kestrel writes into a pipe of ours, and a pump copies it to the socket.</summary>
    public static ConnectionDelegate Wrap(ConnectionDelegate next) => async connection =>
    {
        var transport = connection.Transport;
        var pipe = new Pipe();
        connection.Transport = new Duplex(transport.Input, pipe.Writer);
        var pump = PumpAsync(pipe.Reader, transport.Output);
        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            await pipe.Writer.CompleteAsync().ConfigureAwait(false);
            await pump.ConfigureAwait(false);
            connection.Transport = transport;
        }
    };

    private static async Task PumpAsync(PipeReader reader, PipeWriter output)
    {
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    byte[]? rewritten = buffer.Length <= 4096 ? Rewrite(buffer.ToArray()) : null;
                    if (rewritten is not null)
                    {
                        await output.WriteAsync(rewritten).ConfigureAwait(false);
                    }
                    else
                    {
                        foreach (var segment in buffer)
                        {
                            await output.WriteAsync(segment).ConfigureAwait(false);
                        }
                    }

                    var flush = await output.FlushAsync().ConfigureAwait(false);
                    if (flush.IsCompleted)
                    {
                        break;
                    }
                }

                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException or ConnectionResetException)
        {
            // The client went away: nothing more to write.
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The bytes with Kestrel's empty error response given a body, or null when they hold no such response.</summary>
    internal static byte[]? Rewrite(byte[] bytes)
    {
        if (!bytes.AsSpan().EndsWith(HeadEnd))
        {
            return null;
        }

        int start = bytes.AsSpan().LastIndexOf(StatusLineStart);
        if (start < 0 || bytes.AsSpan(start, bytes.Length - start - HeadEnd.Length).IndexOf(HeadEnd) >= 0)
        {
            return null;
        }

        string head = Encoding.ASCII.GetString(bytes, start, bytes.Length - start);
        var lines = head.Split("\r\n");
        if (lines[0].Length < 12 || !int.TryParse(lines[0].AsSpan(9, 3), out int status) || status < 400
            || !lines.Contains("Content-Length: 0", StringComparer.OrdinalIgnoreCase)
            || !lines.Contains("Connection: close", StringComparer.OrdinalIgnoreCase)
            || lines.Any(l => l.StartsWith("Content-Type:", StringComparison.OrdinalIgnoreCase)))
        {
            return null;
        }

        string reason = ReasonPhrases.GetReasonPhrase(status);
        string message = status switch
        {
            400 => "the request is malformed HTTP (its request line or a header cannot be parsed).",
            408 => "the request's headers did not arrive in time.",
            414 => "the request URL is longer than this server accepts.",
            431 => "the request's headers are larger than this server accepts.",
            _ => $"the server refused the request: {reason}.",
        };
        var body = OpenAiError.Body(message, status >= 500 ? OpenAiError.ServerError : OpenAiError.InvalidRequest, null,
            reason.ToLowerInvariant().Replace(' ', '_')).ToJsonString();
        int bodyBytes = Encoding.UTF8.GetByteCount(body);
        var newHead = new StringBuilder();
        foreach (var line in lines.Take(lines.Length - 2))
        {
            newHead.Append(line.Equals("Content-Length: 0", StringComparison.OrdinalIgnoreCase) ? $"Content-Length: {bodyBytes}" : line).Append("\r\n");
        }

        newHead.Append("Content-Type: application/json\r\n\r\n").Append(body);
        return [.. bytes.AsSpan(0, start), .. Encoding.UTF8.GetBytes(newHead.ToString())];
    }

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}

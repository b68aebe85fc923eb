using System.Diagnostics;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Batching;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// The request handlers of <see cref="OpenAiServer"/>: OpenAI's JSON in, the updates of the reply source out (the chat
/// client, or an Orleans cluster's conversations); the chat client gives the model's id, defaults and checks either way.
/// </summary>
internal sealed partial class OpenAiEndpoints(OnnxGptChatClient client, IReplySource replies, ServerOptions options, ILogger logger)
{
    /// <summary>Responses are JSON for programs, never embedded in HTML: keep quotes and non-ASCII text readable.</summary>
    private static readonly JsonSerializerOptions JsonOutput = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static readonly string[] PostPaths = ["/v1/completions", "/v1/chat/completions"];

    private readonly RequestGate _gate = new(options.MaxConcurrentRequests, options.MaxQueuedRequests);
    private readonly long _started = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    /// <summary>A request without max_tokens gets the model's default, within the server's limit.</summary>
    private readonly int _defaultMaxTokens = Math.Min(client.MapOptions(null, []).MaxNewTokens, options.MaxTokensLimit);

    /// <summary>What the dashboard shows: requests, tokens, time to first token (recorded here).</summary>
    public ServerStats Stats { get; } = new();

    /// <summary>The chat client the requests go to (its batch engine, if any, holds the slots and the queue).</summary>
    public OnnxGptChatClient Client => client;

    /// <summary>The gate requests pass to generate: how many generate and wait now.</summary>
    public RequestGate Gate => _gate;

    public Task ListModelsAsync(HttpContext context) =>
        WriteJsonAsync(context, StatusCodes.Status200OK, new JsonObject { ["object"] = "list", ["data"] = new JsonArray(ModelJson()) });

    public Task GetModelAsync(HttpContext context)
    {
        string? id = context.Request.RouteValues["id"] as string;
        return id == client.ModelId
            ? WriteJsonAsync(context, StatusCodes.Status200OK, ModelJson())
            : WriteErrorAsync(context, UnknownModel(id ?? ""));
    }

    /// <summary><c>POST /v1/chat/completions</c> (<paramref name="chat"/>) or <c>POST /v1/completions</c>.</summary>
    public async Task CompleteAsync(HttpContext context, bool chat)
    {
        long startedAt = Stopwatch.GetTimestamp();
        var clock = Stopwatch.StartNew();
        var cancellationToken = context.RequestAborted;
        string path = context.Request.Path;
        UsageDetails? usage = null;
        Stats.RequestStarted();
        var outcome = ServerStats.Outcome.Refused;
        try
        {
            OpenAiRequest request;
            using (var document = await ReadBodyAsync(context).ConfigureAwait(false))
            {
                request = OpenAiRequest.Read(document.RootElement, chat, options.MaxTokensLimit, _defaultMaxTokens);
            }

            if (request.Model != client.ModelId)
            {
                throw UnknownModel(request.Model);
            }

            foreach (var field in request.Ignored)
            {
                logger.LogWarning("{Path}: ignoring '{Field}', which this server does not support.", path, field);
            }

            if (request.Options.ResponseFormat is ChatResponseFormatJson)
            {
                CheckResponseFormat(request.Options);
            }

            string? conversationId = replies is ClusterReplies ? ClusterReplies.ConversationId(context.Request) : null;
            if (chat ? request.N > 1 : NeedsChoices(request))
            {
                if (replies is ClusterReplies)
                {
                    throw OpenAiError.BadRequest("several prompts, n, best_of and beam search are not supported through an Orleans cluster (serve --orleans) yet: send one prompt per request, n = 1.",
                        "n", "unsupported_value");
                }

                usage = chat
                    ? await ChatChoicesAsync(context, request, clock, cancellationToken).ConfigureAwait(false)
                    : await CompleteChoicesAsync(context, request, clock, cancellationToken).ConfigureAwait(false);
                outcome = ServerStats.Outcome.Completed;
                return;
            }

            // The batch engine (or the cluster) holds its own slots and queue (and refuses beyond them); without one, the gate does.
            using var slot = replies.NeedsGate ? await _gate.EnterAsync(cancellationToken).ConfigureAwait(false) : null;
            IAsyncEnumerable<ChatResponseUpdate> updates;
            try
            {
                updates = chat
                    ? replies.ChatAsync(request.Messages!, request.Options, conversationId, cancellationToken)
                    : replies.CompleteAsync(request.Prompts![0], request.Options, conversationId, cancellationToken);
            }
            catch (ArgumentException e)
            {
                throw OpenAiError.BadRequest(e.Message, ParamOf(e), "invalid_value");
            }
            catch (OnnxGptException e)
            {
                throw OpenAiError.BadRequest(e.Message, chat ? "messages" : "prompt");
            }

            await using var stream = updates.GetAsyncEnumerator(cancellationToken);
            bool more;
            try
            {
                more = await stream.MoveNextAsync().ConfigureAwait(false);   // the prompt is checked and run here
            }
            catch (OnnxGptException e) when (e.Kind == OnnxGptErrorKind.ModelOutput)
            {
                // NaN logits and the like: the model is at fault, not the prompt.
                throw new OpenAiError(StatusCodes.Status500InternalServerError, $"the model produced unusable output: {e.Message}",
                    code: "model_output_invalid", type: OpenAiError.ServerError);
            }
            catch (OnnxGptException e)
            {
                throw OpenAiError.BadRequest(e.Message, chat ? "messages" : "prompt");
            }
            catch (BatchEngineBusyException e)
            {
                throw new OpenAiError(503, e.Message, code: "server_busy", type: OpenAiError.ServerError);
            }

            var reply = new Reply(chat, request, client.ModelId, Stats, clock, startedAt) { Tokenizer = client.Model.Tokenizer!, EchoText = chat || !request.Echo ? "" : PromptText(request.Prompts![0]) };
            if (!chat && request.LogProbs is { } k && request.Echo)
            {
                reply.EchoLogProbs = PromptLogProbs(request.Prompts![0], k);
            }

            usage = request.Stream
                ? await StreamAsync(context, stream, more, reply, cancellationToken).ConfigureAwait(false)
                : await RespondAsync(context, stream, more, reply, cancellationToken).ConfigureAwait(false);
            outcome = ServerStats.Outcome.Completed;
        }
        catch (OpenAiError e)
        {
            await WriteErrorAsync(context, e).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            outcome = ServerStats.Outcome.Cancelled;
            context.Items[DetailKey] = $": the client went away after {clock.Elapsed.TotalMilliseconds:F0} ms; generation stopped";
            return;
        }
        catch (Exception e) when (!context.Response.HasStarted)
        {
            await WriteErrorAsync(context, new OpenAiError(500, $"the server failed on this request: {e.GetType().Name}: {e.Message}", type: OpenAiError.ServerError)).ConfigureAwait(false);
        }
        finally
        {
            Stats.RequestEnded(outcome);
        }

        if (usage is not null)
        {
            context.Items[DetailKey] = $": {usage.InputTokenCount} prompt tokens ({usage.CachedInputTokenCount} cached), {usage.OutputTokenCount} generated"
                + (context.Items[DetailKey] as string ?? "");
        }
    }

    /// <summary>Where a handler leaves what the request's log line should add: usage, or the reason of an error.</summary>
    private const string DetailKey = "onnxgpt.log-detail";

    /// <summary>
    /// One log line per request, whatever its method and outcome: method, path, status, time, and what happened
    /// (usage, or the error's reason). Server errors are logged as errors, everything else as information.
    /// </summary>
    public static async Task LogRequestAsync(HttpContext context, RequestDelegate next, ILogger logger)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            int status = context.Response.StatusCode;
            string detail = context.Items[DetailKey] as string ?? "";
            if (status >= 500)
            {
                logger.LogError("{Method} {Path} {Status} in {Elapsed:F0} ms{Detail}", context.Request.Method, context.Request.Path.Value, status, clock.Elapsed.TotalMilliseconds, detail);
            }
            else
            {
                logger.LogInformation("{Method} {Path} {Status} in {Elapsed:F0} ms{Detail}", context.Request.Method, context.Request.Path.Value, status, clock.Elapsed.TotalMilliseconds, detail);
            }
        }
    }

    /// <summary>A response format the constraint engine refuses (a keyword outside its subset, text the vocabulary cannot write) is the request's fault: 400.</summary>
    private void CheckResponseFormat(ChatOptions requested)
    {
        try
        {
            var mapped = client.MapOptions(requested, []);
            if (mapped.Constraint is { } constraint && client.Model.Tokenizer is { } tokenizer)
            {
                constraint.Start(tokenizer);
            }
        }
        catch (OnnxGptException e)
        {
            throw OpenAiError.BadRequest(e.Message, "response_format", "invalid_value");
        }
    }

    public static Task NotFoundAsync(HttpContext context)
    {
        string path = context.Request.Path.Value ?? "";
        return WriteErrorAsync(context, PostPaths.Contains(path, StringComparer.OrdinalIgnoreCase)
            ? new OpenAiError(StatusCodes.Status405MethodNotAllowed, $"{context.Request.Method} {path} is not allowed; use POST.", code: "method_not_allowed")
            : new OpenAiError(StatusCodes.Status404NotFound, $"unknown request URL: {context.Request.Method} {path}. This server has GET /v1/models, POST /v1/completions and POST /v1/chat/completions.", code: "unknown_url"));
    }

    /// <summary>A status without a body (e.g. 405 from routing) gets an error body too.</summary>
    public static Task WriteStatusErrorAsync(HttpContext context)
    {
        int status = context.Response.StatusCode;
        string reason = ReasonPhrases.GetReasonPhrase(status);
        return WriteErrorAsync(context, new OpenAiError(status, $"{context.Request.Method} {context.Request.Path}: {reason}.",
            code: reason.ToLowerInvariant().Replace(' ', '_'), type: status >= 500 ? OpenAiError.ServerError : OpenAiError.InvalidRequest));
    }

    /// <summary>
    /// Reads the whole body (at most the server's limit) and parses it with the project's one JSON reader: bad UTF-8,
    /// an escaped lone surrogate or a duplicate key is a 400 naming where, a body over the limit 413, one that trickles
    /// in too slowly 408. None of them is a 500.
    /// </summary>
    private async Task<JsonDocument> ReadBodyAsync(HttpContext context)
    {
        if (context.Request.ContentLength > options.MaxRequestBodyBytes)
        {
            throw TooLarge(context.Request.ContentLength.Value);
        }

        byte[] body;
        try
        {
            using var buffer = new MemoryStream();
            await context.Request.Body.CopyToAsync(buffer, context.RequestAborted).ConfigureAwait(false);
            body = buffer.ToArray();
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw TooLarge(null);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status408RequestTimeout)
        {
            throw new OpenAiError(StatusCodes.Status408RequestTimeout,
                $"the request body arrived too slowly (under {OpenAiServer.MinBodyBytesPerSecond} bytes/s after {options.BodyGracePeriod.TotalSeconds:F0} s); send it at once.",
                code: "request_timeout");
        }
        catch (BadHttpRequestException e)
        {
            throw new OpenAiError(e.StatusCode is >= 400 and < 500 ? e.StatusCode : StatusCodes.Status400BadRequest,
                $"the request body cannot be read: {e.Message}", code: "invalid_body");
        }

        try
        {
            return JsonInput.Parse(body, "the request body");
        }
        catch (OnnxGptException e)
        {
            throw OpenAiError.BadRequest(e.Message, code: "invalid_json");
        }

        OpenAiError TooLarge(long? length) => new(StatusCodes.Status413PayloadTooLarge,
            $"the request body{(length is { } n ? $" of {n} bytes" : "")} is larger than this server's limit of {options.MaxRequestBodyBytes} bytes.",
            code: "request_too_large");
    }

    /// <summary>The whole reply as one JSON response.</summary>
    private static async Task<UsageDetails?> RespondAsync(HttpContext context, IAsyncEnumerator<ChatResponseUpdate> stream, bool more, Reply reply, CancellationToken cancellationToken)
    {
        var text = new StringBuilder();
        var logprobs = new List<TokenLogProbs>();
        for (; more; more = await stream.MoveNextAsync().ConfigureAwait(false))
        {
            reply.Observe(stream.Current);
            text.Append(stream.Current.Text);
            logprobs.AddRange(LogProbsOf(stream.Current));
        }

        var choice = reply.Chat
            ? new JsonObject { ["index"] = 0, ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text.ToString(), ["refusal"] = null } }
            : new JsonObject { ["text"] = reply.EchoText + text, ["index"] = 0 };
        choice["logprobs"] = reply.Request.LogProbs is null ? null : reply.LogProbsJson(logprobs);
        choice["finish_reason"] = reply.FinishReason;
        var body = reply.Envelope(reply.Chat ? "chat.completion" : "text_completion");
        body["choices"] = new JsonArray(choice);
        body["usage"] = reply.UsageJson();
        await WriteJsonAsync(context, StatusCodes.Status200OK, body, cancellationToken).ConfigureAwait(false);
        return reply.Usage;
    }

    /// <summary>The reply as server-sent events: one chunk per piece of text, the finish reason, usage if asked, [DONE].</summary>
    private async Task<UsageDetails?> StreamAsync(HttpContext context, IAsyncEnumerator<ChatResponseUpdate> stream, bool more, Reply reply, CancellationToken cancellationToken)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        string kind = reply.Chat ? "chat.completion.chunk" : "text_completion";
        try
        {
            if (reply.Chat)
            {
                await SendAsync(Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null)).ConfigureAwait(false);
            }
            else if (reply.Request.Echo)
            {
                await SendAsync(Chunk(reply.EchoText, null, reply.Request.LogProbs is null ? null : reply.LogProbsJson([]))).ConfigureAwait(false);
            }

            for (; more; more = await stream.MoveNextAsync().ConfigureAwait(false))
            {
                reply.Observe(stream.Current);
                string piece = stream.Current.Text;
                var tokens = LogProbsOf(stream.Current);
                if (piece.Length > 0 || tokens.Count > 0)
                {
                    var logprobs = reply.Request.LogProbs is null ? null : reply.LogProbsJson(tokens);
                    await SendAsync(reply.Chat ? Chunk(new JsonObject { ["content"] = piece }, null, logprobs) : Chunk(piece, null, logprobs)).ConfigureAwait(false);
                    reply.Sent();
                }
            }

            await SendAsync(reply.Chat ? Chunk(new JsonObject(), reply.FinishReason) : Chunk("", reply.FinishReason)).ConfigureAwait(false);
            if (reply.Request.IncludeUsage || reply.Request.IncludeTimings)
            {
                var last = reply.Envelope(kind);
                last["choices"] = new JsonArray();
                if (reply.Request.IncludeUsage)
                {
                    last["usage"] = reply.UsageJson();
                }

                if (reply.Request.IncludeTimings)
                {
                    last["timings"] = reply.TimingsJson();
                }

                await SendAsync(last).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The status is sent already: report the failure as an event, as OpenAI's streams do.
            var error = e as OpenAiError ?? new OpenAiError(500, $"the server failed while streaming: {e.GetType().Name}: {e.Message}", type: OpenAiError.ServerError);
            logger.LogError("{Path}: failed while streaming: {Reason}", context.Request.Path.Value, error.Message);
            context.Items[DetailKey] = $": failed while streaming: {error.Message}";
            await WriteEventAsync(response, error.ToJson().ToJsonString(JsonOutput), cancellationToken).ConfigureAwait(false);
            return reply.Usage;
        }

        await response.WriteAsync("data: [DONE]\n\n", cancellationToken).ConfigureAwait(false);
        await response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
        return reply.Usage;

        Task SendAsync(JsonObject chunk) => WriteEventAsync(response, chunk.ToJsonString(JsonOutput), cancellationToken);

        JsonObject Chunk(JsonNode delta, string? finish, JsonObject? logprobs = null)
        {
            var choice = reply.Chat ? new JsonObject { ["index"] = 0, ["delta"] = delta } : new JsonObject { ["text"] = delta, ["index"] = 0 };
            choice["logprobs"] = logprobs;
            choice["finish_reason"] = finish;
            var chunk = reply.Envelope(kind);
            chunk["choices"] = new JsonArray(choice);
            return chunk;
        }
    }

    private static async Task WriteEventAsync(HttpResponse response, string json, CancellationToken cancellationToken)
    {
        await response.WriteAsync("data: " + json + "\n\n", cancellationToken).ConfigureAwait(false);
        await response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    private JsonObject ModelJson() => new()
    {
        ["id"] = client.ModelId,
        ["object"] = "model",
        ["created"] = _started,
        ["owned_by"] = OnnxGptChatClient.ProviderName,
    };

    private OpenAiError UnknownModel(string model) =>
        new(StatusCodes.Status404NotFound, $"the model '{model}' does not exist; this server serves '{client.ModelId}'.", "model", "model_not_found");

    private static string? ParamOf(ArgumentException e) => e.ParamName switch
    {
        "MaxNewTokens" => "max_tokens",
        "Temperature" => "temperature",
        "TopP" => "top_p",
        "TopK" => "top_k",
        "RepetitionPenalty" => "repetition_penalty",
        "PresencePenalty" => "presence_penalty",
        "FrequencyPenalty" => "frequency_penalty",
        "LogitBias" => "logit_bias",
        "NoRepeatNgramSize" => "no_repeat_ngram_size",
        "LengthPenalty" => "length_penalty",
        "StopStrings" => "stop",
        _ => null,
    };

    private static Task WriteErrorAsync(HttpContext context, OpenAiError error)
    {
        context.Items[DetailKey] = $": {error.Message}";
        if (context.Response.HasStarted)
        {
            return Task.CompletedTask;
        }

        if (error.Status == StatusCodes.Status413PayloadTooLarge)
        {
            // The rest of the body is never read, so Kestrel ends the connection: say so, so the client does not reuse it.
            context.Response.Headers.Connection = "close";
        }

        return WriteJsonAsync(context, error.Status, error.ToJson());
    }

    private static Task WriteJsonAsync(HttpContext context, int status, JsonObject body, CancellationToken cancellationToken = default)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(body.ToJsonString(JsonOutput), cancellationToken);
    }

    /// <summary>What one response says about itself: id, times, model, finish reason and usage, gathered from the updates.</summary>
    private sealed class Reply(bool chat, OpenAiRequest request, string modelId, ServerStats stats, Stopwatch clock, long startedAt)
    {
        private readonly string _id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
        private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        /// <summary>Tokens counted for the stats so far: one per piece of text, corrected by the usage at the end.</summary>
        private long _counted;

        public bool Chat => chat;

        public OpenAiRequest Request => request;

        public string? FinishReason { get; private set; }

        public UsageDetails? Usage { get; private set; }

        /// <summary>The batch engine's account of the request's first token (none off the engine).</summary>
        public BatchRequestTimeline? Timeline { get; private set; }

        /// <summary>When the first piece of text had been written and flushed (0: not yet).</summary>
        public long FirstSentAt { get; private set; }

        /// <summary>A piece of text has been written and flushed.</summary>
        public void Sent()
        {
            if (FirstSentAt == 0)
            {
                FirstSentAt = Stopwatch.GetTimestamp();
            }
        }

        /// <summary>Completions with echo: the prompt's text, which the choice's text starts with.</summary>
        public string EchoText { get; init; } = "";

        /// <summary>Completions with echo and logprobs: the prompt's tokens and their log-probabilities (the first null), given once.</summary>
        public (int Id, TokenLogProbs? LogProbs)[]? EchoLogProbs { get; set; }

        /// <summary>Where the next token's text starts in the choice's text (legacy text_offset).</summary>
        private int _offset;

        /// <summary>The log-probabilities of <paramref name="tokens"/> in the request's shape (the echoed prompt's first, once).</summary>
        public JsonObject LogProbsJson(IReadOnlyList<TokenLogProbs> tokens)
        {
            var json = new LogProbsJson(Tokenizer);
            if (chat)
            {
                return json.Chat(tokens);
            }

            var all = (EchoLogProbs ?? []).Concat(tokens.Select(t => (t.TokenId, (TokenLogProbs?)t)));
            EchoLogProbs = null;
            return json.Legacy(all, ref _offset);
        }

        public required OnnxGpt.Runtime.Tokenization.ITextTokenizer Tokenizer { get; init; }

        public void Observe(ChatResponseUpdate update)
        {
            if (update.Text.Length > 0)
            {
                if (_counted++ == 0)
                {
                    stats.FirstToken(clock.Elapsed);
                }

                stats.TokensGenerated(1);
            }

            if (update.FinishReason is { } reason)
            {
                FinishReason = reason == ChatFinishReason.Length ? "length" : "stop";
            }

            if (update.AdditionalProperties?.TryGetValue(OnnxGptChatClient.TimelineProperty, out var timeline) == true && timeline is BatchRequestTimeline t)
            {
                Timeline = t;
            }

            if (update.Contents.OfType<UsageContent>().FirstOrDefault() is { } usage)
            {
                Usage = usage.Details;
                if (usage.Details.OutputTokenCount is { } output && output != _counted)
                {
                    stats.TokensGenerated((int)(output - _counted));
                    _counted = output;
                }
            }
        }

        public JsonObject Envelope(string kind) => new()
        {
            ["id"] = _id,
            ["object"] = kind,
            ["created"] = _created,
            ["model"] = modelId,
        };

        /// <summary>
        /// <c>stream_options.include_timings</c>: milliseconds from when the server began to handle the request to each
        /// step of its first token (the engine's ones only when the batch engine ran it; null where not reached).
        /// </summary>
        public JsonObject TimingsJson()
        {
            var engine = Timeline ?? default;
            return new JsonObject
            {
                ["submitted_ms"] = Ms(engine.Submitted),
                ["run_in_flight_since_ms"] = Ms(engine.RunInFlightSince),
                ["placed_ms"] = Ms(engine.Placed),
                ["prompt_started_ms"] = Ms(engine.PromptStarted),
                ["prompt_fed_ms"] = Ms(engine.PromptFed),
                ["first_token_ms"] = Ms(engine.FirstToken),
                ["first_sent_ms"] = Ms(FirstSentAt),
            };

            double? Ms(long timestamp) => timestamp == 0 ? null : Math.Round(Stopwatch.GetElapsedTime(startedAt, timestamp).TotalMilliseconds, 3);
        }

        public JsonObject UsageJson() => new()
        {
            ["prompt_tokens"] = Usage?.InputTokenCount ?? 0,
            ["completion_tokens"] = Usage?.OutputTokenCount ?? 0,
            ["total_tokens"] = Usage?.TotalTokenCount ?? 0,
            ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = Usage?.CachedInputTokenCount ?? 0 },
        };
    }
}

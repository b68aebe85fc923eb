using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Batching;
using OnnxGpt.Runtime.Constraints;
using OnnxGpt.Runtime.Diagnostics;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;

namespace OnnxGpt.Runtime.Chat;

/// <summary>
/// An <see cref="IChatClient"/> (Microsoft.Extensions.AI) over a <see cref="GptModel"/>. Messages become one
/// prompt through an <see cref="IChatTemplate"/>; the reply is generated token by token and streamed as text,
/// with leading and trailing whitespace trimmed. <see cref="ChatOptions"/> map to <see cref="GenerationOptions"/>:
/// <list type="bullet">
/// <item><c>Temperature</c> (0 means greedy), <c>TopP</c>, <c>TopK</c>, <c>Seed</c> (as the sampler's 64-bit seed),
/// <c>MaxOutputTokens</c>, <c>StopSequences</c> (added to the template's), <c>Instructions</c> (a system message
/// before the others).</item>
/// <item><c>PresencePenalty</c> p, which like Hugging Face's repetition penalty hits every token seen before once,
/// becomes the repetition penalty <c>1 + p</c> for p ≥ 0 and <c>1 / (1 − p)</c> for p &lt; 0 (OpenAI's range −2..2
/// maps to 1/3..3); <c>AdditionalProperties["repetition_penalty"]</c> sets it directly and wins.</item>
/// <item><c>ResponseFormat</c>: <see cref="ChatResponseFormat.Json"/> constrains the reply to any JSON value, and
/// <c>ChatResponseFormat.ForJsonSchema(...)</c> to the JSON its schema accepts (<see cref="OutputConstraint"/>; the subset
/// is in <c>docs/structured-output.md</c>; a schema outside it is refused), so that M.E.AI's <c>GetResponseAsync&lt;T&gt;</c>
/// gets JSON that deserialises. A reply cut short by <c>MaxOutputTokens</c> or the context ends with
/// <see cref="ChatFinishReason.Length"/> and <see cref="IncompleteProperty"/> true in the last update's <c>AdditionalProperties</c>
/// (the reply message's, in a <see cref="ChatResponse"/>).</item>
/// <item>Ignored, with a warning on the logger: <c>FrequencyPenalty</c> (the sampler has no per-count penalty),
/// tools and tool mode, reasoning, background responses and continuation tokens, and message
/// contents that are not text. <c>ModelId</c> and <c>ConversationId</c> are ignored silently: the client serves one
/// model, and finds a conversation's cache by its tokens.</item>
/// </list>
/// <para>
/// Conversations reuse their KV cache: a finished request's generator is kept (up to
/// <see cref="OnnxGptChatClientOptions.MaxCachedConversations"/>, least recently used dropped), and the next request
/// whose prompt tokens start with most of its sequence rewinds it to the common prefix and runs only the rest.
/// <see cref="UsageDetails.CachedInputTokenCount"/> says how many prompt tokens were reused.
/// </para>
/// <para>
/// Thread-safe. On a fused graph, concurrent requests are batched: the client runs a <see cref="BatchEngine"/> of
/// <see cref="OnnxGptChatClientOptions.BatchSlots"/> sequences, which decodes every request in one run of the model
/// per step, and keeps finished conversations in their slots for reuse; a request beyond its slots and queue is
/// refused with <see cref="BatchEngineBusyException"/>. On a portable graph (or with <c>BatchSlots</c> 0) each
/// request runs its own generator on the shared model (ONNX Runtime runs them in parallel). The final update of a stream carries the finish reason and a <see cref="UsageContent"/>. The client
/// does not own the model unless created with <c>ownsModel</c>.
/// </para>
/// </summary>
public sealed class OnnxGptChatClient : IChatClient
{
    /// <summary>The key of <see cref="ChatOptions.AdditionalProperties"/> that sets the repetition penalty directly.</summary>
    public const string RepetitionPenaltyProperty = "repetition_penalty";

    /// <summary>
    /// The key of the last update's <see cref="ChatResponseUpdate.AdditionalProperties"/> that is true when a reply
    /// constrained by a response format stopped before its JSON was complete.
    /// </summary>
    public const string IncompleteProperty = "incomplete";

    /// <summary>
    /// The key of the last update's <see cref="ChatResponseUpdate.AdditionalProperties"/> that holds, for a request
    /// the batch engine ran, its <see cref="BatchRequestTimeline"/>: where its time to first token went.
    /// </summary>
    public const string TimelineProperty = "onnxgpt.timeline";

    /// <summary>Compiled response-format schemas kept, by their JSON text.</summary>
    private const int MaxCachedSchemas = 64;

    /// <summary>The provider name in <see cref="ChatClientMetadata"/>.</summary>
    public const string ProviderName = "onnxgpt";

    private readonly GptModel _model;
    private readonly bool _ownsModel;
    private readonly ILogger _logger;
    private readonly GenerationOptions _defaults;
    private readonly ConversationPool _pool;
    private readonly BatchEngine? _engine;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, OutputConstraint> _schemas = new(StringComparer.Ordinal);
    private long _processedTokens;
    private volatile bool _disposed;

    /// <summary>A chat client over <paramref name="model"/>.</summary>
    /// <param name="model">The model; it needs a tokenizer.</param>
    /// <param name="options">Template, defaults and cache size; null: the defaults.</param>
    /// <param name="logger">Where ignored options are reported; null: nowhere.</param>
    /// <param name="ownsModel">Dispose the model with the client.</param>
    /// <exception cref="OnnxGptException">The model has no tokenizer, or its stored chat template is invalid.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public OnnxGptChatClient(GptModel model, OnnxGptChatClientOptions? options = null, ILogger? logger = null, bool ownsModel = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new OnnxGptChatClientOptions();
        options.Validate();
        if (model.Tokenizer is null)
        {
            throw new OnnxGptException($"{model.ModelPath}: the model has no tokenizer, and a chat client needs one to turn messages into tokens.");
        }

        _model = model;
        _ownsModel = ownsModel;
        _logger = logger ?? NullLogger.Instance;
        Options = options;
        Template = options.ChatTemplate ?? ChatTemplate.ForModel(model);
        _defaults = options.DefaultGenerationOptions ?? GenerationOptions.FromDefaults(model.GenerationDefaults);
        _pool = new ConversationPool(options.MaxCachedConversations);
        ModelId = options.ModelId ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(model.Folder));
        Metadata = new ChatClientMetadata(ProviderName, new Uri(model.ModelPath), ModelId);
        if (options.BatchSlots > 0 && BatchEngine.Supports(model))
        {
            _engine = BatchEngine.Start(model, new BatchEngineOptions
            {
                Slots = options.BatchSlots,
                MaxQueuedRequests = options.MaxQueuedRequests,
                PrefillChunkTokens = options.PrefillChunkTokens,
                MaxIdleConversations = options.MaxCachedConversations,
            }, _logger);
        }
    }

    /// <summary>The batch engine the client's requests share (null on a portable graph, or with <see cref="OnnxGptChatClientOptions.BatchSlots"/> 0).</summary>
    public BatchEngine? Engine => _engine;

    /// <summary>The model the client runs.</summary>
    public GptModel Model => _model;

    /// <summary>The options the client was created with.</summary>
    public OnnxGptChatClientOptions Options { get; }

    /// <summary>The prompt format in use.</summary>
    public IChatTemplate Template { get; }

    /// <summary>The model id the client reports.</summary>
    public string ModelId { get; }

    /// <summary>Provider name, model file and model id.</summary>
    public ChatClientMetadata Metadata { get; }

    /// <summary>Token positions fed to the model by every request so far (prompt tokens not reused, plus one per decoding step).</summary>
    public long ProcessedTokens => Interlocked.Read(ref _processedTokens);

    /// <summary>Finished conversations kept for reuse now.</summary>
    public int CachedConversations => _engine?.GetStatistics().IdleConversations ?? _pool.Count;

    /// <inheritdoc/>
    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

    /// <inheritdoc/>
    public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var list = new List<ChatMessage>();
        if (options?.Instructions is { Length: > 0 } instructions)
        {
            list.Add(new ChatMessage(ChatRole.System, instructions));
        }

        foreach (var message in messages)
        {
            ArgumentNullException.ThrowIfNull(message, nameof(messages));
            if (message.Contents.Any(c => c is not TextContent))
            {
                LogIgnored("message contents that are not text", message.Role.Value);
            }

            list.Add(message);
        }

        CheckEachMessageEncodes(list, hasInstructions: options?.Instructions is { Length: > 0 });
        var generation = MapOptions(options, Template.StopSequences);
        string prompt = Template.Render(list);
        if (Options.DropOldMessages)
        {
            prompt = FitToContext(list, prompt, generation.MaxNewTokens);
        }

        return GenerateAsync(prompt, generation, trim: true, cancellationToken);
    }

    /// <summary>
    /// Continues <paramref name="prompt"/> as plain text, without a chat template or trimming (an OpenAI
    /// <c>/v1/completions</c> request). Options map as for chat; the cache is reused the same way.
    /// </summary>
    public IAsyncEnumerable<ChatResponseUpdate> CompleteStreamingAsync(string prompt, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return GenerateAsync(prompt, MapOptions(options, []), trim: false, cancellationToken);
    }

    /// <summary>
    /// The generation options a request gets: the client's defaults overridden by <paramref name="options"/>, with
    /// <paramref name="templateStops"/> added to the stop strings (see the class remarks for the mapping).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range; the message names the option.</exception>
    public GenerationOptions MapOptions(ChatOptions? options, IReadOnlyList<string> templateStops)
    {
        ArgumentNullException.ThrowIfNull(templateStops);
        var stops = new List<string>(_defaults.StopStrings);
        AddStops(templateStops);
        var result = _defaults;
        if (options is not null)
        {
            if (options.StopSequences is { } requested)
            {
                AddStops(requested.Where(s => !string.IsNullOrEmpty(s)));
            }

            result = new GenerationOverrides
            {
                MaxNewTokens = options.MaxOutputTokens,
                Temperature = options.Temperature,
                TopP = options.TopP,
                TopK = options.TopK,
                Seed = options.Seed is { } seed ? unchecked((ulong)seed) : null,
                RepetitionPenalty = RepetitionPenalty(options),
            }.ApplyTo(result);
            if (options.FrequencyPenalty is { } f && f != 0)
            {
                LogIgnored(nameof(ChatOptions.FrequencyPenalty), "the sampler has no per-count penalty; use PresencePenalty");
            }

            if (options.Tools is { Count: > 0 } || options.ToolMode is not null)
            {
                LogIgnored(nameof(ChatOptions.Tools), "the model does not call tools");
            }

            if (options.ResponseFormat is ChatResponseFormatJson json)
            {
                result = result with { Constraint = json.Schema is { } schema ? CompileSchema(schema) : OutputConstraint.AnyJson };
            }

            if (options.Reasoning is not null || options.AllowBackgroundResponses is not null || options.ContinuationToken is not null)
            {
                LogIgnored("Reasoning/AllowBackgroundResponses/ContinuationToken", "not supported");
            }
        }

        result = result with { StopStrings = stops };
        result.Validate();
        return result;

        void AddStops(IEnumerable<string> more)
        {
            foreach (var s in more)
            {
                if (!stops.Contains(s))
                {
                    stops.Add(s);
                }
            }
        }
    }

    /// <summary>The constraint for a response format's schema, compiled once per distinct schema text.</summary>
    /// <exception cref="OnnxGptException">The schema is outside the supported subset; the message names the keyword and its path.</exception>
    private OutputConstraint CompileSchema(System.Text.Json.JsonElement schema)
    {
        string text = schema.GetRawText();
        if (_schemas.TryGetValue(text, out var known))
        {
            return known;
        }

        var constraint = OutputConstraint.FromJsonSchema(schema);
        if (_schemas.Count >= MaxCachedSchemas)
        {
            _schemas.Clear();
        }

        return _schemas.GetOrAdd(text, constraint);
    }

    /// <inheritdoc/>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null)
        {
            return null;
        }

        if (serviceType == typeof(ChatClientMetadata))
        {
            return Metadata;
        }

        if (serviceType.IsInstanceOfType(_model))
        {
            return _model;
        }

        if (serviceType.IsInstanceOfType(Template))
        {
            return Template;
        }

        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Disposes the cached conversations (and the model, if the client owns it).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _engine?.Dispose();
        _pool.Dispose();
        if (_ownsModel)
        {
            _model.Dispose();
        }
    }

    private async IAsyncEnumerable<ChatResponseUpdate> GenerateAsync(
        string prompt, GenerationOptions generation, bool trim, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        int[] tokens = EncodePrompt(prompt);
        int context = _model.Config.ContextLength;
        if (tokens.Length >= context)
        {
            throw new OnnxGptException(
                $"the prompt is {tokens.Length} tokens long, but the model's context is {context} tokens, which leaves no room for a reply; " +
                (trim ? "drop earlier messages or shorten them (or let the client drop them: DropOldMessages)." : "shorten the prompt."));
        }

        using var telemetry = RequestTelemetry.Start(trim ? "chat" : "text_completion", ModelId, generation);
        cancellationToken.ThrowIfCancellationRequested();
        if (_engine is not null)
        {
            await foreach (var update in BatchedAsync(_engine, tokens, generation, trim, telemetry, cancellationToken).ConfigureAwait(false))
            {
                yield return update;
            }

            yield break;
        }

        await Task.Yield();   // the prompt's forward pass runs off the caller's thread
        var (generator, reused) = Start(tokens, generation);
        bool faulted = false;
        long fedBefore = generator.ProcessedTokens;
        try
        {
            string responseId = "chatcmpl-" + Guid.NewGuid().ToString("N");
            var created = DateTimeOffset.UtcNow;
            var trimmer = trim ? new ReplyTrimmer() : null;
            while (!generator.IsDone)
            {
                cancellationToken.ThrowIfCancellationRequested();
                try
                {
                    generator.GenerateNextToken();
                }
                catch
                {
                    faulted = true;
                    throw;
                }

                telemetry.FirstToken();

                string piece = generator.GetLastPiece(0);
                if (trimmer is not null)
                {
                    piece = trimmer.Push(piece);
                }

                if (piece.Length > 0)
                {
                    yield return Update(responseId, created, [new TextContent(piece)]);
                }

                await Task.Yield();
            }

            int output = generator.GetSequence(0).Length - generator.GetPromptLength(0);
            var usage = new UsageDetails
            {
                InputTokenCount = tokens.Length,
                OutputTokenCount = output,
                TotalTokenCount = tokens.Length + output,
                CachedInputTokenCount = reused,
            };
            var last = Update(responseId, created, [new UsageContent(usage)]);
            last.FinishReason = ToChatFinishReason(generator.GetFinishReason(0));
            telemetry.Finish(tokens.Length, output, last.FinishReason?.Value, responseId);
            if (generator.GetConstraintState(0) is { IsComplete: false })
            {
                last.AdditionalProperties = new() { [IncompleteProperty] = true };
            }

            yield return last;
        }
        finally
        {
            Interlocked.Add(ref _processedTokens, generator.ProcessedTokens - fedBefore);
            if (faulted)
            {
                generator.Dispose();
            }
            else
            {
                _pool.Return(generator);   // finished, cancelled or abandoned mid-stream: the sequence and cache agree
            }
        }
    }

    /// <summary>
    /// Encodes each message's own text, so a character the vocabulary lacks is reported in the message the user wrote,
    /// at its position there, rather than at a position in the templated prompt the user never saw.
    /// </summary>
    private void CheckEachMessageEncodes(List<ChatMessage> messages, bool hasInstructions)
    {
        for (int i = 0; i < messages.Count; i++)
        {
            try
            {
                _model.Tokenizer!.Encode(messages[i].Text);
            }
            catch (OnnxGptException e)
            {
                string which = hasInstructions && i == 0 ? "the instructions" : $"message {(hasInstructions ? i - 1 : i)} ({messages[i].Role.Value})";
                throw new OnnxGptException($"{which}: {e.Message}", e);
            }
        }
    }

    /// <summary>The prompt's tokens, after the begin-of-sequence token when the tokenizer's files ask for one (Llama's &lt;s&gt;).</summary>
    private int[] EncodePrompt(string prompt)
    {
        var tokenizer = _model.Tokenizer!;
        int[] tokens = tokenizer.Encode(prompt);
        return tokenizer.AddsBosToken && tokenizer.BosTokenId is { } bos ? [bos, .. tokens] : tokens;
    }

    /// <summary>One request through the batch engine: its tokens as they come, then the finish reason and usage.</summary>
    private async IAsyncEnumerable<ChatResponseUpdate> BatchedAsync(
        BatchEngine engine, int[] tokens, GenerationOptions generation, bool trim, RequestTelemetry telemetry, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var request = engine.Submit(tokens, generation, cancellationToken: cancellationToken);
        try
        {
            string responseId = "chatcmpl-" + Guid.NewGuid().ToString("N");
            var created = DateTimeOffset.UtcNow;
            var trimmer = trim ? new ReplyTrimmer() : null;
            await foreach (var token in request.ReadTokensAsync(cancellationToken).ConfigureAwait(false))
            {
                telemetry.FirstToken();
                string piece = trimmer is null ? token.Text : trimmer.Push(token.Text);
                if (piece.Length > 0)
                {
                    yield return Update(responseId, created, [new TextContent(piece)]);
                }
            }

            var usage = new UsageDetails
            {
                InputTokenCount = tokens.Length,
                OutputTokenCount = request.GeneratedTokens,
                TotalTokenCount = tokens.Length + request.GeneratedTokens,
                CachedInputTokenCount = request.ReusedTokens,
            };
            var last = Update(responseId, created, [new UsageContent(usage)]);
            last.FinishReason = ToChatFinishReason(request.FinishReason);
            telemetry.Finish(tokens.Length, request.GeneratedTokens, last.FinishReason?.Value, responseId);
            last.AdditionalProperties = new() { [TimelineProperty] = request.Timeline };
            if (request.Result?.ConstraintComplete == false)
            {
                last.AdditionalProperties[IncompleteProperty] = true;
            }

            yield return last;
        }
        finally
        {
            request.Cancel();   // a no-op once it finished; frees its slot when the caller stopped reading
            Interlocked.Add(ref _processedTokens, request.FedTokens);
        }
    }

    /// <summary>Drops the oldest messages (not system messages, not the last one) until the prompt leaves room for a reply.</summary>
    private string FitToContext(List<ChatMessage> messages, string prompt, int maxNewTokens)
    {
        int context = _model.Config.ContextLength;
        int budget = context - Math.Min(maxNewTokens, context / 2);
        int dropped = 0;
        while (EncodePrompt(prompt).Length > budget)
        {
            int oldest = messages.FindIndex(m => m.Role != ChatRole.System);
            if (oldest < 0 || oldest == messages.Count - 1)
            {
                break;   // nothing left to drop: GenerateAsync refuses the prompt if it still does not fit
            }

            messages.RemoveAt(oldest);
            prompt = Template.Render(messages);
            dropped++;
        }

        if (dropped > 0)
        {
            _logger.LogDebug("OnnxGpt chat client: dropped the {Dropped} oldest messages to fit the context of {Context} tokens.", dropped, context);
        }

        return prompt;
    }

    /// <summary>A generator holding <paramref name="tokens"/> with nothing run yet on the part not reused from the cache.</summary>
    private (Generator Generator, int Reused) Start(int[] tokens, GenerationOptions generation)
    {
        var generator = _pool.Take(tokens, out int common);
        if (generator is not null)
        {
            try
            {
                // Keep at least one prompt token to append, so the new request starts a fresh generation.
                int keep = Math.Min(common, tokens.Length - 1);
                generator.SetOptions(generation);
                generator.RewindTo(keep);
                generator.Append(tokens.AsSpan(keep));
                return (generator, generator.Cache?.Length ?? 0);   // the prompt tokens that will not be fed again
            }
            catch
            {
                generator.Dispose();
                throw;
            }
        }

        generator = _model.CreateGenerator(generation);
        try
        {
            generator.Append(tokens);
            return (generator, 0);
        }
        catch
        {
            generator.Dispose();
            throw;
        }
    }

    private ChatResponseUpdate Update(string responseId, DateTimeOffset created, IList<AIContent> contents) => new(ChatRole.Assistant, contents)
    {
        ResponseId = responseId,
        MessageId = responseId,
        CreatedAt = created,
        ModelId = ModelId,
    };

    private static ChatFinishReason? ToChatFinishReason(FinishReason reason) => reason switch
    {
        FinishReason.EndOfSequence or FinishReason.StopToken or FinishReason.StopString or FinishReason.ConstraintComplete => ChatFinishReason.Stop,
        FinishReason.MaxNewTokens or FinishReason.ContextFull => ChatFinishReason.Length,
        _ => null,
    };

    private static double? RepetitionPenalty(ChatOptions options)
    {
        if (options.AdditionalProperties?.TryGetValue(RepetitionPenaltyProperty, out var value) == true && value is not null)
        {
            return value switch
            {
                double d => d,
                float f => f,
                int i => i,
                long l => l,
                decimal m => (double)m,
                System.Text.Json.JsonElement { ValueKind: System.Text.Json.JsonValueKind.Number } e => e.GetDouble(),
                _ => throw new ArgumentException(
                    $"ChatOptions.AdditionalProperties[\"{RepetitionPenaltyProperty}\"] must be a number; found {value.GetType().Name} '{value}'.", nameof(options)),
            };
        }

        return options.PresencePenalty is { } p ? (p >= 0 ? 1 + p : 1 / (1 - (double)p)) : null;
    }

    private void LogIgnored(string what, string why) =>
        _logger.LogWarning("OnnxGpt chat client: ignoring {What} ({Why}).", what, why);
}

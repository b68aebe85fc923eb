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
/// <item><c>PresencePenalty</c> and <c>FrequencyPenalty</c> one to one to OpenAI's additive penalties
/// (<see cref="GenerationOptions.PresencePenalty"/>, <see cref="GenerationOptions.FrequencyPenalty"/>).</item>
/// <item><c>AdditionalProperties</c>: <c>repetition_penalty</c> (Hugging Face's, multiplicative), <c>logit_bias</c>
/// (token id → bias, OpenAI's), <c>no_repeat_ngram_size</c>, <c>logprobs</c> (true) and <c>top_logprobs</c> (0..20:
/// each update then carries its tokens' <see cref="TokenLogProbs"/> in <c>AdditionalProperties["logprobs"]</c>),
/// and beam search: <c>num_beams</c>, <c>length_penalty</c>, <c>early_stopping</c> (true, false or "never"), whose
/// best hypothesis is the reply, in one update at the end.</item>
/// <item><c>ResponseFormat</c>: <see cref="ChatResponseFormat.Json"/> constrains the reply to any JSON value, and
/// <c>ChatResponseFormat.ForJsonSchema(...)</c> to the JSON its schema accepts (<see cref="OutputConstraint"/>; the subset
/// is in <c>docs/structured-output.md</c>; a schema outside it is refused), so that M.E.AI's <c>GetResponseAsync&lt;T&gt;</c>
/// gets JSON that deserialises. A reply cut short by <c>MaxOutputTokens</c> or the context ends with
/// <see cref="ChatFinishReason.Length"/> and <see cref="IncompleteProperty"/> true in the last update's <c>AdditionalProperties</c>
/// (the reply message's, in a <see cref="ChatResponse"/>).</item>
/// <item>Ignored, with a warning on the logger: tools and tool mode, reasoning, background responses and continuation tokens, and message
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

    /// <summary>The key of <see cref="ChatOptions.AdditionalProperties"/> for OpenAI's logit bias (token id → −100..100).</summary>
    public const string LogitBiasProperty = "logit_bias";

    /// <summary>
    /// The key of <see cref="ChatOptions.AdditionalProperties"/> that asks for log-probabilities (true), and of
    /// <see cref="ChatResponseUpdate.AdditionalProperties"/> where each update carries its tokens' <see cref="TokenLogProbs"/> (an array).
    /// </summary>
    public const string LogProbsProperty = "logprobs";

    /// <summary>The key of <see cref="ChatOptions.AdditionalProperties"/> for the alternatives per token (0..20; implies logprobs).</summary>
    public const string TopLogProbsProperty = "top_logprobs";

    /// <summary>The key of <see cref="ChatOptions.AdditionalProperties"/> for Hugging Face's no-repeat n-gram size.</summary>
    public const string NoRepeatNgramSizeProperty = "no_repeat_ngram_size";

    /// <summary>The key of <see cref="ChatOptions.AdditionalProperties"/> for beam search's beams.</summary>
    public const string NumBeamsProperty = "num_beams";

    /// <summary>The key of <see cref="ChatOptions.AdditionalProperties"/> for beam search's length penalty.</summary>
    public const string LengthPenaltyProperty = "length_penalty";

    /// <summary>The key of <see cref="ChatOptions.AdditionalProperties"/> for beam search's early stopping (true, false or "never").</summary>
    public const string EarlyStoppingProperty = "early_stopping";

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
        var (prompt, generation) = PrepareChat(messages, options);
        return GenerateAsync(prompt, generation, trim: true, cancellationToken);
    }

    /// <summary>
    /// The prompt tokens and the generation options a chat request runs with: the messages (after
    /// <c>Instructions</c>) through the template, old messages dropped when <see cref="OnnxGptChatClientOptions.DropOldMessages"/>
    /// says so, and the options mapped as the class remarks say. For a host that runs the generation itself (an
    /// OpenAI server's several choices per chat request); the reply's text is the generated text, trimmed.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range; the message names it.</exception>
    /// <exception cref="OnnxGptException">A message cannot be encoded, or the conversation does not fit the context.</exception>
    public (int[] Prompt, GenerationOptions Options) PrepareChat(IEnumerable<ChatMessage> messages, ChatOptions? options = null)
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

        return (EncodePrompt(prompt), generation);
    }

    /// <summary>
    /// Continues <paramref name="prompt"/> as plain text, without a chat template or trimming (an OpenAI
    /// <c>/v1/completions</c> request). Options map as for chat; the cache is reused the same way.
    /// </summary>
    public IAsyncEnumerable<ChatResponseUpdate> CompleteStreamingAsync(string prompt, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return GenerateAsync(EncodePrompt(prompt), MapOptions(options, []), trim: false, cancellationToken);
    }

    /// <summary>Continues a prompt given as token ids (an OpenAI <c>/v1/completions</c> request with a token array).</summary>
    /// <exception cref="OnnxGptException">A token id is outside the vocabulary (when the sequence starts).</exception>
    public IAsyncEnumerable<ChatResponseUpdate> CompleteStreamingAsync(IReadOnlyList<int> promptTokens, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(promptTokens);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return GenerateAsync([.. promptTokens], MapOptions(options, []), trim: false, cancellationToken);
    }

    /// <summary>The prompt's tokens, after the begin-of-sequence token when the tokenizer's files ask for one (Llama's &lt;s&gt;).</summary>
    public int[] EncodePrompt(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var tokenizer = _model.Tokenizer!;
        int[] tokens = tokenizer.Encode(prompt);
        return tokenizer.AddsBosToken && tokenizer.BosTokenId is { } bos ? [bos, .. tokens] : tokens;
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

            result = Overrides(options).ApplyTo(result);

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

    /// <summary>
    /// What <paramref name="options"/> ask for on top of a model's defaults, by the mapping in the class remarks
    /// (stop sequences aside: <see cref="MapOptions"/> adds them after the template's). A host that applies the
    /// defaults elsewhere (a conversation grain on another machine) maps a request's options with this.
    /// </summary>
    /// <exception cref="ArgumentException">An <c>AdditionalProperties</c> entry the mapping reads (repetition_penalty, num_beams, logit_bias...) is not of its type.</exception>
    public static GenerationOverrides Overrides(ChatOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new GenerationOverrides
        {
            MaxNewTokens = options.MaxOutputTokens,
            Temperature = options.Temperature,
            TopP = options.TopP,
            TopK = options.TopK,
            Seed = options.Seed is { } seed ? unchecked((ulong)seed) : null,
            RepetitionPenalty = Number(options, RepetitionPenaltyProperty),
            PresencePenalty = options.PresencePenalty,
            FrequencyPenalty = options.FrequencyPenalty,
            LogitBias = LogitBias(options),
            NoRepeatNgramSize = (int?)Number(options, NoRepeatNgramSizeProperty),
            NumBeams = (int?)Number(options, NumBeamsProperty),
            LengthPenalty = Number(options, LengthPenaltyProperty),
            EarlyStopping = EarlyStopping(options),
            TopLogProbs = TopLogProbs(options),
        };
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
        int[] tokens, GenerationOptions generation, bool trim, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (generation.NumReturnSequences > 1)
        {
            throw new ArgumentException(
                $"a chat client request gives one reply; {generation.NumReturnSequences} sequences per prompt run on a Generator (or the server's n).", nameof(generation));
        }

        int context = _model.Config.ContextLength;
        if (tokens.Length >= context)
        {
            throw new OnnxGptException(
                $"the prompt is {tokens.Length} tokens long, but the model's context is {context} tokens, which leaves no room for a reply; " +
                (trim ? "drop earlier messages or shorten them (or let the client drop them: DropOldMessages)." : "shorten the prompt."));
        }

        using var telemetry = RequestTelemetry.Start(trim ? "chat" : "text_completion", ModelId, generation);
        cancellationToken.ThrowIfCancellationRequested();
        if (generation.IsBeamSearch)
        {
            await foreach (var update in BeamReplyAsync(tokens, generation, trim, telemetry, cancellationToken).ConfigureAwait(false))
            {
                yield return update;
            }

            yield break;
        }

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
            List<TokenLogProbs>? pendingLogProbs = null;
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
                if (generator.GetLogProbs(0) is { Count: > 0 } recorded)
                {
                    (pendingLogProbs ??= []).Add(recorded[^1]);
                }

                string piece = generator.GetLastPiece(0);
                if (trimmer is not null)
                {
                    piece = trimmer.Push(piece);
                }

                if (piece.Length > 0)
                {
                    yield return WithLogProbs(Update(responseId, created, [new TextContent(piece)]), ref pendingLogProbs);
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
            var last = WithLogProbs(Update(responseId, created, [new UsageContent(usage)]), ref pendingLogProbs);
            last.FinishReason = ToChatFinishReason(generator.GetFinishReason(0));
            telemetry.Finish(tokens.Length, output, last.FinishReason?.Value, responseId);
            if (generator.GetConstraintState(0) is { IsComplete: false })
            {
                (last.AdditionalProperties ??= [])[IncompleteProperty] = true;
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
            List<TokenLogProbs>? pendingLogProbs = null;
            await foreach (var token in request.ReadTokensAsync(cancellationToken).ConfigureAwait(false))
            {
                telemetry.FirstToken();
                if (token.LogProbs is { } recorded)
                {
                    (pendingLogProbs ??= []).Add(recorded);
                }

                string piece = trimmer is null ? token.Text : trimmer.Push(token.Text);
                if (piece.Length > 0)
                {
                    yield return WithLogProbs(Update(responseId, created, [new TextContent(piece)]), ref pendingLogProbs);
                }
            }

            var usage = new UsageDetails
            {
                InputTokenCount = tokens.Length,
                OutputTokenCount = request.GeneratedTokens,
                TotalTokenCount = tokens.Length + request.GeneratedTokens,
                CachedInputTokenCount = request.ReusedTokens,
            };
            var last = WithLogProbs(Update(responseId, created, [new UsageContent(usage)]), ref pendingLogProbs);
            last.FinishReason = ToChatFinishReason(request.FinishReason);
            telemetry.Finish(tokens.Length, request.GeneratedTokens, last.FinishReason?.Value, responseId);
            (last.AdditionalProperties ??= [])[TimelineProperty] = request.Timeline;
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

    /// <summary>The update, carrying the log-probabilities of the tokens since the last one (which are then handed over).</summary>
    private static ChatResponseUpdate WithLogProbs(ChatResponseUpdate update, ref List<TokenLogProbs>? pending)
    {
        if (pending is { Count: > 0 })
        {
            (update.AdditionalProperties ??= [])[LogProbsProperty] = pending.ToArray();
            pending.Clear();
        }

        return update;
    }

    /// <summary>Beam search: the best hypothesis is the reply, in one update, then the finish reason and usage.</summary>
    private async IAsyncEnumerable<ChatResponseUpdate> BeamReplyAsync(
        int[] tokens, GenerationOptions generation, bool trim, RequestTelemetry telemetry, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.Yield();
        // Beam search has no stop strings: the reply is cut at the first one afterwards (the template's included).
        using var generator = _model.CreateGenerator(generation with { StopStrings = [] });
        generator.Append(tokens);
        var best = generator.GenerateAll(cancellationToken)[0];
        Interlocked.Add(ref _processedTokens, generator.ProcessedTokens);
        telemetry.FirstToken();
        string responseId = "chatcmpl-" + Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow;
        string text = best.Text ?? string.Empty;
        foreach (string stop in generation.StopStrings)
        {
            int at = text.IndexOf(stop, StringComparison.Ordinal);
            text = at >= 0 ? text[..at] : text;
        }

        if (trim)
        {
            text = text.Trim();
        }

        if (text.Length > 0)
        {
            yield return Update(responseId, created, [new TextContent(text)]);
        }

        var usage = new UsageDetails { InputTokenCount = tokens.Length, OutputTokenCount = best.NewTokens, TotalTokenCount = tokens.Length + best.NewTokens, CachedInputTokenCount = 0 };
        var last = Update(responseId, created, [new UsageContent(usage)]);
        last.FinishReason = ToChatFinishReason(best.FinishReason);
        last.AdditionalProperties = new() { ["score"] = best.Score };
        telemetry.Finish(tokens.Length, best.NewTokens, last.FinishReason?.Value, responseId);
        yield return last;
    }

    private static double? Number(ChatOptions options, string key)
    {
        if (options.AdditionalProperties?.TryGetValue(key, out var value) == true && value is not null)
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
                    $"ChatOptions.AdditionalProperties[\"{key}\"] must be a number; found {value.GetType().Name} '{value}'.", nameof(options)),
            };
        }

        return null;
    }

    private static int? TopLogProbs(ChatOptions options)
    {
        int? top = (int?)Number(options, TopLogProbsProperty);
        if (options.AdditionalProperties?.TryGetValue(LogProbsProperty, out var value) == true && value is not null)
        {
            bool on = value switch
            {
                bool b => b,
                System.Text.Json.JsonElement { ValueKind: System.Text.Json.JsonValueKind.True } => true,
                System.Text.Json.JsonElement { ValueKind: System.Text.Json.JsonValueKind.False } => false,
                _ => throw new ArgumentException($"ChatOptions.AdditionalProperties[\"{LogProbsProperty}\"] must be true or false; found {value.GetType().Name} '{value}'.", nameof(options)),
            };
            return on ? top ?? 0 : null;
        }

        return top;
    }

    private static BeamEarlyStopping? EarlyStopping(ChatOptions options)
    {
        if (options.AdditionalProperties?.TryGetValue(EarlyStoppingProperty, out var value) != true || value is null)
        {
            return null;
        }

        return value switch
        {
            true or System.Text.Json.JsonElement { ValueKind: System.Text.Json.JsonValueKind.True } => BeamEarlyStopping.Early,
            false or System.Text.Json.JsonElement { ValueKind: System.Text.Json.JsonValueKind.False } => BeamEarlyStopping.Heuristic,
            "never" => BeamEarlyStopping.Never,
            System.Text.Json.JsonElement { ValueKind: System.Text.Json.JsonValueKind.String } e when e.GetString() == "never" => BeamEarlyStopping.Never,
            BeamEarlyStopping s => s,
            _ => throw new ArgumentException($"ChatOptions.AdditionalProperties[\"{EarlyStoppingProperty}\"] must be true, false or \"never\"; found '{value}'.", nameof(options)),
        };
    }

    /// <summary>OpenAI's logit_bias: a map of token id (a number, or its decimal text as JSON keys are) to a number.</summary>
    private static Dictionary<int, double>? LogitBias(ChatOptions options)
    {
        if (options.AdditionalProperties?.TryGetValue(LogitBiasProperty, out var value) != true || value is null)
        {
            return null;
        }

        var bias = new Dictionary<int, double>();
        switch (value)
        {
            case IEnumerable<KeyValuePair<int, double>> typed:
                foreach (var (k, v) in typed)
                {
                    bias[k] = v;
                }

                break;
            case IEnumerable<KeyValuePair<string, int>> openAi:   // the OpenAI .NET client's shape
                foreach (var (k, v) in openAi)
                {
                    bias[TokenId(k)] = v;
                }

                break;
            case System.Text.Json.JsonElement { ValueKind: System.Text.Json.JsonValueKind.Object } json:
                foreach (var p in json.EnumerateObject())
                {
                    if (p.Value.ValueKind != System.Text.Json.JsonValueKind.Number)
                    {
                        throw new ArgumentException($"logit_bias[\"{p.Name}\"] must be a number; found {p.Value.ValueKind}.", nameof(options));
                    }

                    bias[TokenId(p.Name)] = p.Value.GetDouble();
                }

                break;
            default:
                throw new ArgumentException($"ChatOptions.AdditionalProperties[\"{LogitBiasProperty}\"] must map token ids to numbers; found {value.GetType().Name}.", nameof(options));
        }

        return bias;

        static int TokenId(string key) => int.TryParse(key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id)
            ? id : throw new ArgumentException($"logit_bias keys must be token ids (whole numbers); found '{key}'.", "LogitBias");
    }

    private void LogIgnored(string what, string why) =>
        _logger.LogWarning("OnnxGpt chat client: ignoring {What} ({Why}).", what, why);
}

using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Evaluation;
using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// <c>/v1/completions</c> with several choices (and <c>/v1/chat/completions</c> with <c>n</c> &gt; 1): a batch of prompts, <c>n</c> &gt; 1, <c>best_of</c> &gt; n, or beam
/// search. They run on one <see cref="Generator"/> over the model (each prompt once, its cache copied into its
/// rows; beams as the generator's beam search), within the server's concurrency gate, beside the batch engine:
/// <list type="bullet">
/// <item>Choice <c>index</c> = prompt · n + j, as OpenAI numbers them.</item>
/// <item><c>best_of</c> with sampling: best_of samples per prompt (row r seeded seed + r), of which the n with the
/// highest log-probability per token (raw model) are returned; with <c>use_beam_search</c> (vLLM's field),
/// best_of (else n) beams, and the n best hypotheses, best first, with <c>length_penalty</c> and <c>early_stopping</c>.</item>
/// <item>Streaming (without best_of above n or beams) sends each row's tokens as they come, with their index.</item>
/// </list>
/// </summary>
internal sealed partial class OpenAiEndpoints
{
    private static bool NeedsChoices(OpenAiRequest request) =>
        request.Prompts!.Count > 1 || request.N > 1 || request.BestOf > 1 || request.UseBeamSearch;

    private string PromptText(CompletionPrompt prompt) => prompt.Text ?? client.Model.Tokenizer!.Decode(prompt.Tokens);

    private int[] PromptTokens(CompletionPrompt prompt) => prompt.Tokens ?? client.EncodePrompt(prompt.Text!);

    /// <summary>The prompt's tokens with their raw log-probabilities (the first has none), for echo.</summary>
    private (int Id, TokenLogProbs? LogProbs)[] PromptLogProbs(CompletionPrompt prompt, int top)
    {
        int[] tokens = PromptTokens(prompt);
        CheckIds(tokens, "prompt");
        var scores = Perplexity.TokenLogProbs(client.Model, tokens, top);
        return [.. tokens.Select((id, i) => (id, scores[i]))];
    }

    private void CheckIds(int[] tokens, string param)
    {
        int vocab = client.Model.Config.VocabSize;
        foreach (int id in tokens)
        {
            if (id >= vocab)
            {
                throw OpenAiError.BadRequest($"{param}: token id {id} is outside the vocabulary of {vocab} tokens (valid ids are 0 to {vocab - 1}).", param, "invalid_value");
            }
        }
    }

    private static IReadOnlyList<TokenLogProbs> LogProbsOf(ChatResponseUpdate update) =>
        update.AdditionalProperties?.TryGetValue(OnnxGptChatClient.LogProbsProperty, out var value) == true && value is TokenLogProbs[] tokens ? tokens : [];

    private static string FinishName(FinishReason reason) =>
        reason is FinishReason.MaxNewTokens or FinishReason.ContextFull ? "length" : "stop";

    /// <summary>Runs a request of several choices and writes its answer (JSON, or events when streamed); returns its usage.</summary>
    private async Task<UsageDetails> CompleteChoicesAsync(HttpContext context, OpenAiRequest request, Stopwatch clock, CancellationToken cancellationToken)
    {
        var prompts = request.Prompts!;
        var tokens = new int[prompts.Count][];
        int context_ = client.Model.Config.ContextLength;
        for (int p = 0; p < prompts.Count; p++)
        {
            string param = prompts.Count == 1 ? "prompt" : $"prompt[{p}]";
            try
            {
                tokens[p] = PromptTokens(prompts[p]);
            }
            catch (OnnxGptException e)
            {
                throw OpenAiError.BadRequest(e.Message, param);
            }

            CheckIds(tokens[p], param);
            if (tokens[p].Length >= context_)
            {
                throw OpenAiError.BadRequest($"{param} has {tokens[p].Length} tokens, but the model's context is {context_} tokens, which leaves no room for a reply.", param);
            }
        }

        GenerationOptions generation;
        try
        {
            generation = client.MapOptions(request.Options, []);
            generation = generation with
            {
                NumReturnSequences = request.UseBeamSearch ? request.N : request.BestOf,
                TopLogProbs = request.UseBeamSearch ? null : request.LogProbs ?? (request.BestOf > request.N ? 0 : null),
            };
            generation.Validate();
        }
        catch (ArgumentException e)
        {
            throw OpenAiError.BadRequest(e.Message, ParamOf(e), "invalid_value");
        }

        using var slot = await _gate.EnterAsync(cancellationToken).ConfigureAwait(false);
        Generator generator;
        try
        {
            generator = client.Model.CreateGenerator(generation);
        }
        catch (OnnxGptException e)
        {
            throw OpenAiError.BadRequest(e.Message, request.UseBeamSearch && generation.StopStrings.Count > 0 ? "stop" : "prompt", "invalid_value");
        }

        using (generator)
        {
            try
            {
                generator.AppendBatch(tokens);
            }
            catch (OnnxGptException e)
            {
                throw OpenAiError.BadRequest(e.Message, "prompt");
            }

            string id = "cmpl-" + Guid.NewGuid().ToString("N");
            long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            int promptTokens = tokens.Sum(t => t.Length);
            if (request.Stream)
            {
                return await StreamChoicesAsync(context, request, generator, id, created, promptTokens, clock, cancellationToken).ConfigureAwait(false);
            }

            var results = await Task.Run(() => generator.GenerateAll(cancellationToken), cancellationToken).ConfigureAwait(false);
            int generated = results.Sum(r => r.NewTokens);
            Stats.FirstToken(clock.Elapsed);
            Stats.TokensGenerated(generated);
            var choices = new JsonArray();
            var json = new LogProbsJson(client.Model.Tokenizer!);
            for (int p = 0; p < prompts.Count; p++)
            {
                foreach (var (r, j) in Pick(results, p, request).Select((r, j) => (r, j)))
                {
                    string echo = request.Echo ? PromptText(prompts[p]) : "";
                    JsonObject? logprobs = null;
                    if (request.LogProbs is { } k)
                    {
                        int offset = 0;
                        var echoed = request.Echo ? PromptLogProbs(prompts[p], k) : [];
                        var own = r.LogProbs ?? ScoreGenerated(r, k);
                        logprobs = json.Legacy(echoed.Concat(own.Select(t => (t.TokenId, (TokenLogProbs?)t))), ref offset);
                    }

                    var choice = new JsonObject { ["text"] = echo + r.Text, ["index"] = p * request.N + j, ["logprobs"] = logprobs, ["finish_reason"] = FinishName(r.FinishReason) };
                    if (r.Score is { } score)
                    {
                        choice["score"] = score;   // beam search: the hypothesis' length-penalised score (an extra field, as vLLM has none)
                    }

                    choices.Add(choice);
                }
            }

            var usage = new UsageDetails { InputTokenCount = promptTokens, OutputTokenCount = generated, TotalTokenCount = promptTokens + generated, CachedInputTokenCount = 0 };
            var body = new JsonObject { ["id"] = id, ["object"] = "text_completion", ["created"] = created, ["model"] = client.ModelId, ["choices"] = choices, ["usage"] = UsageJson(usage) };
            await WriteJsonAsync(context, StatusCodes.Status200OK, body, cancellationToken).ConfigureAwait(false);
            return usage;
        }
    }

    /// <summary>
    /// <c>/v1/chat/completions</c> with <c>n</c> &gt; 1: the conversation rendered as the chat client renders it, run
    /// once, its cache copied into n rows (row j seeded seed + j); each choice's message is its row's text, trimmed as
    /// the chat client trims a reply (streamed: each row's pieces through its own <see cref="ReplyTrimmer"/>).
    /// </summary>
    private async Task<UsageDetails> ChatChoicesAsync(HttpContext context, OpenAiRequest request, Stopwatch clock, CancellationToken cancellationToken)
    {
        int[] prompt;
        GenerationOptions generation;
        try
        {
            (prompt, generation) = client.PrepareChat(request.Messages!, request.Options);
            generation = generation with { NumReturnSequences = request.N, TopLogProbs = request.LogProbs };
            generation.Validate();
        }
        catch (ArgumentException e)
        {
            throw OpenAiError.BadRequest(e.Message, ParamOf(e), "invalid_value");
        }
        catch (OnnxGptException e)
        {
            throw OpenAiError.BadRequest(e.Message, "messages");
        }

        using var slot = await _gate.EnterAsync(cancellationToken).ConfigureAwait(false);
        using var generator = client.Model.CreateGenerator(generation);
        try
        {
            generator.Append(prompt);
        }
        catch (OnnxGptException e)
        {
            throw OpenAiError.BadRequest(e.Message, "messages");
        }

        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        if (request.Stream)
        {
            return await StreamChatChoicesAsync(context, request, generator, id, created, prompt.Length, clock, cancellationToken).ConfigureAwait(false);
        }

        var results = await Task.Run(() => generator.GenerateAll(cancellationToken), cancellationToken).ConfigureAwait(false);
        int generated = results.Sum(r => r.NewTokens);
        Stats.FirstToken(clock.Elapsed);
        Stats.TokensGenerated(generated);
        var json = new LogProbsJson(client.Model.Tokenizer!);
        var choices = new JsonArray();
        foreach (var r in results)
        {
            choices.Add(new JsonObject
            {
                ["index"] = r.Row,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = (r.Text ?? "").Trim(), ["refusal"] = null },
                ["logprobs"] = request.LogProbs is null ? null : json.Chat(r.LogProbs ?? []),
                ["finish_reason"] = FinishName(r.FinishReason),
            });
        }

        var usage = new UsageDetails { InputTokenCount = prompt.Length, OutputTokenCount = generated, TotalTokenCount = prompt.Length + generated, CachedInputTokenCount = 0 };
        var body = new JsonObject
        {
            ["id"] = id, ["object"] = "chat.completion", ["created"] = created, ["model"] = client.ModelId, ["choices"] = choices, ["usage"] = UsageJson(usage),
        };
        await WriteJsonAsync(context, StatusCodes.Status200OK, body, cancellationToken).ConfigureAwait(false);
        return usage;
    }

    /// <summary>
    /// Several chat choices streamed: each choice's role first, then each row's trimmed pieces as they come with their
    /// index (a token whose text the trim holds back sends its log-probabilities with the next piece, or with the finish), each row's finish
    /// reason when it stops, usage if asked, [DONE].
    /// </summary>
    private async Task<UsageDetails> StreamChatChoicesAsync(HttpContext context, OpenAiRequest request, Generator generator, string id, long created,
        int promptTokens, Stopwatch clock, CancellationToken cancellationToken)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        var json = new LogProbsJson(client.Model.Tokenizer!);
        var trimmers = new ReplyTrimmer[generator.BatchSize];
        var pending = new List<TokenLogProbs>[generator.BatchSize];
        for (int row = 0; row < generator.BatchSize; row++)
        {
            trimmers[row] = new ReplyTrimmer();
            pending[row] = [];
            await SendAsync(Chunk(row, new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, null)).ConfigureAwait(false);
        }

        int generated = 0;
        await foreach (var token in generator.StreamAsync(cancellationToken).ConfigureAwait(false))
        {
            if (generated++ == 0)
            {
                Stats.FirstToken(clock.Elapsed);
            }

            Stats.TokensGenerated(1);
            if (request.LogProbs is not null && token.LogProbs is { } lp)
            {
                pending[token.Row].Add(lp);
            }

            string piece = trimmers[token.Row].Push(token.Text);
            if (piece.Length > 0)
            {
                JsonObject? logprobs = request.LogProbs is null ? null : json.Chat(pending[token.Row]);
                pending[token.Row].Clear();
                await SendAsync(Chunk(token.Row, new JsonObject { ["content"] = piece }, logprobs, null)).ConfigureAwait(false);
            }

            if (token.FinishReason != FinishReason.None)
            {
                // Tokens whose text the trim dropped at the end still send their log-probabilities, with the finish.
                JsonObject? logprobs = request.LogProbs is null || pending[token.Row].Count == 0 ? null : json.Chat(pending[token.Row]);
                await SendAsync(Chunk(token.Row, new JsonObject(), logprobs, FinishName(token.FinishReason))).ConfigureAwait(false);
            }
        }

        return await EndChoicesStreamAsync(response, request, id, "chat.completion.chunk", created, promptTokens, generated, cancellationToken).ConfigureAwait(false);

        Task SendAsync(JsonObject chunk) => WriteEventAsync(response, chunk.ToJsonString(JsonOutput), cancellationToken);

        JsonObject Chunk(int index, JsonObject delta, JsonObject? logprobs, string? finish) => new()
        {
            ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = created, ["model"] = client.ModelId,
            ["choices"] = new JsonArray(new JsonObject { ["index"] = index, ["delta"] = delta, ["logprobs"] = logprobs, ["finish_reason"] = finish }),
        };
    }

    /// <summary>
    /// A prompt's n choices: beam search's hypotheses as ranked; samples in row order, or with best_of above n the n
    /// with the highest mean raw log-probability per token (ties: the lower row).
    /// </summary>
    private static IEnumerable<GenerationResult> Pick(IReadOnlyList<GenerationResult> results, int prompt, OpenAiRequest request)
    {
        var mine = results.Where(r => r.Prompt == prompt);
        if (request.UseBeamSearch || request.BestOf == request.N)
        {
            return mine;
        }

        return mine.OrderByDescending(r => r.LogProbs is { Count: > 0 } lp ? lp.Average(t => t.LogProb) : double.NegativeInfinity).ThenBy(r => r.Row).Take(request.N);
    }

    /// <summary>The raw log-probabilities of a result's generated tokens (beam search records none while it searches).</summary>
    private IReadOnlyList<TokenLogProbs> ScoreGenerated(GenerationResult result, int top)
    {
        var scores = Perplexity.TokenLogProbs(client.Model, [.. result.Ids], top);
        return [.. scores.Skip(result.PromptLength).Select(s => s!)];
    }

    /// <summary>Several rows streamed: each token as a chunk with its row's choice index, then the finish reasons, usage if asked, [DONE].</summary>
    private async Task<UsageDetails> StreamChoicesAsync(HttpContext context, OpenAiRequest request, Generator generator, string id, long created,
        int promptTokens, Stopwatch clock, CancellationToken cancellationToken)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        var json = new LogProbsJson(client.Model.Tokenizer!);
        var offsets = new int[generator.BatchSize];
        int generated = 0;
        if (request.Echo)
        {
            for (int row = 0; row < generator.BatchSize; row++)
            {
                var prompt = request.Prompts![row / request.N];
                JsonObject? logprobs = request.LogProbs is { } k ? json.Legacy(PromptLogProbs(prompt, k), ref offsets[row]) : null;
                await SendAsync(Chunk(row, PromptText(prompt), logprobs, null)).ConfigureAwait(false);
            }
        }

        await foreach (var token in generator.StreamAsync(cancellationToken).ConfigureAwait(false))
        {
            if (generated++ == 0)
            {
                Stats.FirstToken(clock.Elapsed);
            }

            Stats.TokensGenerated(1);
            JsonObject? logprobs = request.LogProbs is not null && token.LogProbs is { } lp ? json.Legacy([(token.TokenId, lp)], ref offsets[token.Row]) : null;
            string? finish = token.FinishReason == FinishReason.None ? null : FinishName(token.FinishReason);
            await SendAsync(Chunk(token.Row, token.Text, logprobs, finish)).ConfigureAwait(false);
        }

        return await EndChoicesStreamAsync(response, request, id, "text_completion", created, promptTokens, generated, cancellationToken).ConfigureAwait(false);

        Task SendAsync(JsonObject chunk) => WriteEventAsync(response, chunk.ToJsonString(JsonOutput), cancellationToken);

        JsonObject Chunk(int index, string text, JsonObject? logprobs, string? finish) => new()
        {
            ["id"] = id, ["object"] = "text_completion", ["created"] = created, ["model"] = client.ModelId,
            ["choices"] = new JsonArray(new JsonObject { ["text"] = text, ["index"] = index, ["logprobs"] = logprobs, ["finish_reason"] = finish }),
        };
    }

    /// <summary>
    /// Ends a stream of several choices: the usage chunk when the request asked for it (no choices, as OpenAI sends
    /// it), then <c>[DONE]</c>. Returns the usage.
    /// </summary>
    private async Task<UsageDetails> EndChoicesStreamAsync(HttpResponse response, OpenAiRequest request, string id, string objectName, long created,
        int promptTokens, int generated, CancellationToken cancellationToken)
    {
        var usage = new UsageDetails { InputTokenCount = promptTokens, OutputTokenCount = generated, TotalTokenCount = promptTokens + generated, CachedInputTokenCount = 0 };
        if (request.IncludeUsage)
        {
            var chunk = new JsonObject
            {
                ["id"] = id, ["object"] = objectName, ["created"] = created, ["model"] = client.ModelId, ["choices"] = new JsonArray(), ["usage"] = UsageJson(usage),
            };
            await WriteEventAsync(response, chunk.ToJsonString(JsonOutput), cancellationToken).ConfigureAwait(false);
        }

        await response.WriteAsync("data: [DONE]\n\n", cancellationToken).ConfigureAwait(false);
        await response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
        return usage;
    }

    private static JsonObject UsageJson(UsageDetails usage) => new()
    {
        ["prompt_tokens"] = usage.InputTokenCount ?? 0,
        ["completion_tokens"] = usage.OutputTokenCount ?? 0,
        ["total_tokens"] = usage.TotalTokenCount ?? 0,
        ["prompt_tokens_details"] = new JsonObject { ["cached_tokens"] = usage.CachedInputTokenCount ?? 0 },
    };
}

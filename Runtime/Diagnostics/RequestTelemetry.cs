using System.Diagnostics;
using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Runtime.Diagnostics;

/// <summary>
/// One generation request's span and measurements (see <see cref="OnnxGptTelemetry"/>): started with the request,
/// told of its first token and of its end. Measurements are recorded only for requests that finished.
/// </summary>
internal sealed class RequestTelemetry : IDisposable
{
    private readonly long _start = Stopwatch.GetTimestamp();
    private readonly TagList _tags;
    private readonly Activity? _activity;
    private long _firstToken;
    private bool _finished;

    private RequestTelemetry(string operation, string model, GenerationOptions options)
    {
        _tags = new TagList
        {
            { "gen_ai.operation.name", operation },
            { "gen_ai.provider.name", OnnxGptTelemetry.ProviderName },
            { "gen_ai.request.model", model },
            { "gen_ai.response.model", model },
        };
        _activity = OnnxGptTelemetry.ActivitySource.StartActivity($"{operation} {model}", ActivityKind.Internal);
        if (_activity is { IsAllDataRequested: true })
        {
            foreach (var tag in _tags)
            {
                _activity.SetTag(tag.Key, tag.Value);
            }

            _activity.SetTag("gen_ai.request.max_tokens", options.MaxNewTokens);
            _activity.SetTag("gen_ai.request.temperature", options.IsGreedy ? 0 : options.Temperature);
            _activity.SetTag("gen_ai.request.top_k", options.TopK);
            _activity.SetTag("gen_ai.request.top_p", options.TopP);
            if (options.Seed is { } seed)
            {
                _activity.SetTag("gen_ai.request.seed", unchecked((long)seed));
            }
        }
    }

    /// <summary>Starts the span and the clock of one request.</summary>
    public static RequestTelemetry Start(string operation, string model, GenerationOptions options) => new(operation, model, options);

    /// <summary>The request's first token is out (called once; later calls do nothing).</summary>
    public void FirstToken()
    {
        if (_firstToken == 0)
        {
            _firstToken = Stopwatch.GetTimestamp();
        }
    }

    /// <summary>The request finished: records its usage and times.</summary>
    public void Finish(int inputTokens, int outputTokens, string? finishReason, string responseId)
    {
        long end = Stopwatch.GetTimestamp();
        _finished = true;
        Record(inputTokens, "input");
        Record(outputTokens, "output");
        OnnxGptTelemetry.RequestDuration.Record(Stopwatch.GetElapsedTime(_start, end).TotalSeconds, _tags);
        if (_firstToken != 0)
        {
            OnnxGptTelemetry.TimeToFirstToken.Record(Stopwatch.GetElapsedTime(_start, _firstToken).TotalSeconds, _tags);
            if (outputTokens > 1)
            {
                OnnxGptTelemetry.TimePerOutputToken.Record(Stopwatch.GetElapsedTime(_firstToken, end).TotalSeconds / (outputTokens - 1), _tags);
            }
        }

        if (_activity is { IsAllDataRequested: true })
        {
            _activity.SetTag("gen_ai.response.id", responseId);
            _activity.SetTag("gen_ai.usage.input_tokens", inputTokens);
            _activity.SetTag("gen_ai.usage.output_tokens", outputTokens);
            if (finishReason is not null)
            {
                _activity.SetTag("gen_ai.response.finish_reasons", new[] { finishReason });
            }
        }
    }

    /// <summary>Ends the span; a request that did not finish is marked as an error (cancelled or failed).</summary>
    public void Dispose()
    {
        if (_activity is null)
        {
            return;
        }

        if (!_finished)
        {
            _activity.SetStatus(ActivityStatusCode.Error, "the request did not finish");
            _activity.SetTag("error.type", "_OTHER");
        }

        _activity.Dispose();
    }

    private void Record(int tokens, string type)
    {
        var tags = _tags;
        tags.Add("gen_ai.token.type", type);
        OnnxGptTelemetry.TokenUsage.Record(tokens, tags);
    }
}

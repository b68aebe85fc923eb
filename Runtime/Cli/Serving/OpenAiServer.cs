using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Chat;

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// An OpenAI-compatible HTTP server on Kestrel over one <see cref="OnnxGptChatClient"/>: <c>GET /v1/models</c>,
/// <c>POST /v1/completions</c> and <c>POST /v1/chat/completions</c>, each streamed as server-sent events when asked
/// (<c>"stream": true</c>, ending with <c>data: [DONE]</c>). Errors come in OpenAI's shape with their status code.
/// Concurrent requests are batched by the client's <see cref="Runtime.Batching.BatchEngine"/> (a fused graph): one
/// run of the model per step for all of them, in the engine's slots, with its bounded queue; on a portable graph each
/// request generates on its own generator, up to <see cref="ServerOptions.MaxConcurrentRequests"/> at once, and more
/// wait in a bounded queue. Beyond the queue the answer is 503. Unless <see cref="ServerOptions.WebUi"/> is
/// off, a chat page (<c>/</c>) and a live dashboard (<c>/dashboard</c>) come with it (<see cref="WebUiEndpoints"/>);
/// browser pages of other origins are refused unless <see cref="ServerOptions.CorsOrigins"/> names them
/// (<see cref="CrossOriginPolicy"/>). The server does not own the client.
/// </summary>
public sealed class OpenAiServer : IAsyncDisposable
{
    /// <summary>The slowest a request body may arrive after <see cref="ServerOptions.BodyGracePeriod"/> (Kestrel's default rate).</summary>
    public const double MinBodyBytesPerSecond = 240;

    private readonly WebApplication _app;

    private OpenAiServer(WebApplication app, IReadOnlyList<string> urls)
    {
        _app = app;
        Urls = urls;
    }

    /// <summary>The addresses the server listens on, with the ports actually bound.</summary>
    public IReadOnlyList<string> Urls { get; }

    /// <summary>Starts a server; returns once it listens.</summary>
    /// <param name="client">The chat client to serve (its <see cref="OnnxGptChatClient.ModelId"/> is the model's id).</param>
    /// <param name="options">Addresses and limits.</param>
    /// <param name="log">Where request lines (information) and problems (warnings, errors) go; null: nowhere.</param>
    /// <param name="logLevel">The least level written to <paramref name="log"/>.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    /// <exception cref="IOException">An address cannot be bound (in use, or not a local address).</exception>
    public static Task<OpenAiServer> StartAsync(OnnxGptChatClient client, ServerOptions options, TextWriter? log = null,
        LogLevel logLevel = LogLevel.Information, CancellationToken cancellationToken = default) =>
        StartAsync(client, new LocalReplies(client), options, log, logLevel, cancellationToken);

    /// <summary>Starts a server whose replies come from <paramref name="replies"/> (an Orleans cluster's conversations, say); <paramref name="client"/> gives the model's id, defaults and checks.</summary>
    internal static async Task<OpenAiServer> StartAsync(OnnxGptChatClient client, IReplySource replies, ServerOptions options, TextWriter? log = null,
        LogLevel logLevel = LogLevel.Information, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(replies);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "onnxgpt" });
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
            // A body that trickles in slower than this is cut off with 408 (Kestrel's rate, a grace period of our own).
            kestrel.Limits.MinRequestBodyDataRate = new Microsoft.AspNetCore.Server.Kestrel.Core.MinDataRate(
                MinBodyBytesPerSecond, options.BodyGracePeriod);
            // Kestrel's own 400/408/414/431 answers get OpenAI's error body too.
            kestrel.ConfigureEndpointDefaults(listen => listen.Use(KestrelErrorBodies.Wrap));
        });
        builder.WebHost.UseUrls(options.Urls);
        builder.Services.AddRoutingCore();
        options.Telemetry.AddTo(builder.Services);
        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        builder.Logging.ClearProviders();
        if (log is not null)
        {
            builder.Logging.AddProvider(new WriterLoggerProvider(log, logLevel));
            builder.Logging.SetMinimumLevel(logLevel);
            builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
            // A failed start (an address in use) is reported once, by the caller, from the exception.
            builder.Logging.AddFilter("Microsoft.Extensions.Hosting", LogLevel.None);
            builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting", LogLevel.None);
            builder.Logging.AddFilter("Microsoft.AspNetCore.Server.Kestrel", LogLevel.Critical);
        }

        var app = builder.Build();
        var endpoints = new OpenAiEndpoints(client, replies, options, app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("onnxgpt.serve"));
        var requestLog = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("onnxgpt.serve");
        app.Use((context, next) => OpenAiEndpoints.LogRequestAsync(context, next, requestLog));
        app.UseStatusCodePages(context => OpenAiEndpoints.WriteStatusErrorAsync(context.HttpContext));
        app.Use(new CrossOriginPolicy(options.CorsOrigins).InvokeAsync);
        app.UseRouting();
        app.MapGet("/v1/models", endpoints.ListModelsAsync);
        app.MapGet("/v1/models/{id}", endpoints.GetModelAsync);
        app.MapPost("/v1/chat/completions", context => endpoints.CompleteAsync(context, chat: true));
        app.MapPost("/v1/completions", context => endpoints.CompleteAsync(context, chat: false));
        if (options.WebUi)
        {
            WebUiEndpoints.Map(app, endpoints, client.ModelId);
        }

        options.Telemetry.MapTo(app);
        app.MapFallback(OpenAiEndpoints.NotFoundAsync);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? [];
        return new OpenAiServer(app, addresses);
    }

    /// <summary>Completes when the host is asked to stop (Ctrl+C, SIGTERM, or <see cref="StopAsync"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    /// <summary>Stops listening; requests in flight get until <paramref name="cancellationToken"/> to finish.</summary>
    public Task StopAsync(CancellationToken cancellationToken = default) => _app.StopAsync(cancellationToken);

    /// <summary>Stops the server and releases it.</summary>
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}

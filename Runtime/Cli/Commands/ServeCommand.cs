using System.CommandLine;
using Microsoft.Extensions.Logging;
using OnnxGpt.Cli.Options;
using OnnxGpt.Cli.Serving;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Cli.Commands;

/// <summary><c>onnxgpt serve --model DIR</c>: an OpenAI-compatible HTTP server (chat and text completions) until Ctrl+C.</summary>
internal sealed class ServeCommand : CliCommand
{
    private static readonly ServerOptions Defaults = new();

    private readonly Option<string> _model = CliOption.RequiredText("--model", "DIR", "a model folder (or .onnx file); it needs a tokenizer");

    private readonly Option<string> _urls = CliOption.Text("--urls", "URLS",
        "addresses to listen on, ';'-separated; port 0 picks a free one", () => Defaults.Urls);

    private readonly Option<string?> _modelId = CliOption.Text("--model-id", "ID",
        "the model's id in requests and /v1/models", "the folder's name");

    private readonly Option<int> _maxTokensLimit = CliOption.Int("--max-tokens-limit", "N",
        "refuse requests asking for more than N tokens", Defaults.MaxTokensLimit, min: 1);

    private readonly Option<long> _maxBodyBytes = CliOption.Long("--max-body-bytes", "N",
        "refuse request bodies larger than N bytes with 413", Defaults.MaxRequestBodyBytes, min: 1);

    private readonly Option<int> _parallel = CliOption.Int("--parallel", "N",
        "requests generating at once: slots of the batch engine, decoded together in one run per step (fused graph); " +
        "one generator each on a portable graph", Defaults.MaxConcurrentRequests, min: 1);

    private readonly Option<int> _prefillChunk = CliOption.Int("--prefill-chunk", "N",
        "fused graph: most prompt tokens a joining request feeds per step beside the decoding ones",
        new OnnxGptChatClientOptions().PrefillChunkTokens, min: 1);

    private readonly Option<int> _queue = CliOption.Int("--queue", "N",
        "requests waiting for a slot before the server answers 503", Defaults.MaxQueuedRequests, min: 0);

    private readonly Option<int> _cacheConversations = CliOption.Int("--cache-conversations", "N",
        "finished conversations kept with their KV caches for reuse; 0 turns reuse off",
        new OnnxGptChatClientOptions().MaxCachedConversations, min: 0);

    private readonly Option<bool> _noUi = CliOption.Flag("--no-ui", "no chat page (/) and no dashboard (/dashboard): the API only");

    private readonly Option<string[]> _corsOrigins = CliOption.Repeated("--cors-origin", "ORIGIN",
        "let browser pages from ORIGIN (scheme://host[:port], or * for any) call the server",
        "none: pages of other origins get 403");
    private readonly Option<bool> _metrics = CliOption.Flag("--metrics",
        "serve OpenTelemetry metrics (gen-AI token usage, request duration, time to first token, time per output token, " +
        "queue length, active sequences) at /metrics in Prometheus' text format");

    private readonly Option<Uri?> _otlpEndpoint = CliOption.Custom<Uri>("--otlp-endpoint", "URL",
        "send metrics and traces by OTLP to this collector, e.g. http://localhost:4317", "none",
        text => Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            ? (uri, null) : (null, $"'{text}' is not an http:// or https:// URL."));

    private readonly Option<string> _otlpProtocol = CliOption.Choice("--otlp-protocol",
        "how --otlp-endpoint is spoken to: grpc (port 4317) or http/protobuf (port 4318)", "grpc", ["grpc", "http/protobuf"]);

    private readonly Option<bool> _orleans = CliOption.Flag("--orleans",
        "serve through an Orleans cluster, this process a silo of it: each conversation is a grain placed on a silo with a free " +
        "engine slot (--parallel is this silo's), saved turn by turn, continued on another silo if its own is lost; " +
        "requests name their conversation by the X-Conversation-Id header, or get a hash of the conversation's start");

    private readonly Option<bool> _orleansClient = CliOption.Flag("--orleans-client",
        "serve through an Orleans cluster as a client only (no engine here; the model is loaded for its id, template and defaults)");

    private readonly Option<int> _siloPort = CliOption.Int("--silo-port", "PORT", "--orleans: this silo's port for the other silos", 11111, min: 1, max: 65535);

    private readonly Option<int> _gatewayPort = CliOption.Int("--gateway-port", "PORT", "--orleans: this silo's port for cluster clients", 30000, min: 1, max: 65535);

    private readonly Option<int?> _primarySilo = CliOption.OptionalInt("--primary-silo", "PORT",
        "--orleans: the silo port of the cluster's first silo on this machine (localhost clustering)", "this silo is the first", min: 1, max: 65535);

    private readonly Option<int[]?> _gateways = CliOption.IntList("--gateways", "PORTS",
        "--orleans-client: the silos' gateway ports on this machine, comma-separated", "30000", min: 1);

    private readonly Option<string> _clusterId = CliOption.Text("--cluster-id", "ID", "--orleans: the cluster's id (its silos and clients share it)", () => "onnxgpt");

    private readonly Option<string?> _orleansStorage = CliOption.Text("--orleans-storage", "DIR",
        "--orleans: the folder conversations are saved in, the same for every silo, so a silo's loss loses none", "in memory, lost with the silo holding them");

    private readonly Option<int> _idleTimeout = CliOption.Int("--idle-timeout", "SECONDS",
        "--orleans: a conversation idle this long is deactivated and gives its slot back (its history stays saved)", 600, min: 1);

    private readonly SessionOptionGroup _session = new();

    private readonly SpeculationOptionGroup _speculation = new();

    private readonly Option<bool> _quiet = CliOption.Flag("--quiet", "log warnings and errors only, not one line per request");

    public ServeCommand()
        : base("serve", "serve a model over an OpenAI-compatible HTTP API: GET /v1/models, POST /v1/completions, " +
            "POST /v1/chat/completions (\"stream\": true for server-sent events); in a browser, a chat page at / and a live dashboard at /dashboard")
    {
        Options.Add(_model);
        Options.Add(_urls);
        Options.Add(_modelId);
        Options.Add(_maxTokensLimit);
        Options.Add(_maxBodyBytes);
        Options.Add(_parallel);
        Options.Add(_queue);
        Options.Add(_prefillChunk);
        Options.Add(_cacheConversations);
        Options.Add(_noUi);
        Options.Add(_corsOrigins);
        Options.Add(_metrics);
        Options.Add(_otlpEndpoint);
        Options.Add(_otlpProtocol);
        _speculation.AddTo(this);
        Options.Add(_orleans);
        Options.Add(_orleansClient);
        Options.Add(_siloPort);
        Options.Add(_gatewayPort);
        Options.Add(_primarySilo);
        Options.Add(_gateways);
        Options.Add(_clusterId);
        Options.Add(_orleansStorage);
        Options.Add(_idleTimeout);
        _session.AddTo(this);
        Options.Add(_quiet);
        Validators.Add(r =>
        {
            if (r.Given(_urls) && string.IsNullOrWhiteSpace(r.ValueIfValid(_urls)))
            {
                r.AddError("--urls: give at least one address to listen on, e.g. http://127.0.0.1:8080.");
            }

            bool silo = r.ValueIfValid(_orleans), client = r.ValueIfValid(_orleansClient);
            if (silo && client)
            {
                r.AddError("--orleans and --orleans-client: give one; a silo is a client of its cluster already.");
            }

            foreach (var (option, asSilo) in new (Option, bool)[] { (_siloPort, true), (_gatewayPort, true), (_primarySilo, true), (_orleansStorage, true), (_idleTimeout, true), (_gateways, false) })
            {
                if (r.Given(option) && !(asSilo ? silo : client))
                {
                    r.AddError($"{option.Name} needs {(asSilo ? "--orleans" : "--orleans-client")}.");
                }
            }

            if (r.Given(_clusterId) && !silo && !client)
            {
                r.AddError("--cluster-id needs --orleans or --orleans-client.");
            }

            foreach (string origin in r.ValueIfValid(_corsOrigins) ?? [])
            {
                if (CrossOriginPolicy.OriginProblem(origin) is { } problem)
                {
                    r.AddError("--cors-origin: " + problem);
                }
            }
        });
    }

    protected override int Run(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        var options = new ServerOptions
        {
            Urls = parse.GetRequiredValue(_urls),
            MaxTokensLimit = parse.GetValue(_maxTokensLimit),
            MaxRequestBodyBytes = parse.GetValue(_maxBodyBytes),
            MaxConcurrentRequests = parse.GetValue(_parallel),
            MaxQueuedRequests = parse.GetValue(_queue),
            WebUi = !parse.GetValue(_noUi),
            CorsOrigins = parse.GetValue(_corsOrigins) ?? [],
            Telemetry = new ServerTelemetry
            {
                PrometheusEndpoint = parse.GetValue(_metrics),
                OtlpEndpoint = parse.GetValue(_otlpEndpoint),
                OtlpProtocol = parse.GetValue(_otlpProtocol) == "grpc" ? OpenTelemetry.Exporter.OtlpExportProtocol.Grpc
                    : OpenTelemetry.Exporter.OtlpExportProtocol.HttpProtobuf,
            },
        };
        var log = parse.GetValue(_quiet) ? LogLevel.Warning : LogLevel.Information;
        var sessionSettings = _session.Read(parse);
        var modelSettings = _speculation.HasDraft(parse) ? SpeculationOptionGroup.ForDraft(sessionSettings) : sessionSettings;
        using var model = SessionOptionGroup.Load(parse.GetRequiredValue(_model), modelSettings, stderr);
        var speculation = _speculation.Load(parse, sessionSettings, stderr);
        using var draft = speculation?.DraftModel;
        bool asSilo = parse.GetValue(_orleans), orleans = asSilo || parse.GetValue(_orleansClient);
        var clientOptions = new OnnxGptChatClientOptions
        {
            DefaultGenerationOptions = speculation is null ? null : GenerationOptions.FromDefaults(model.GenerationDefaults) with { Speculation = speculation },
            ModelId = parse.GetValue(_modelId),
            MaxCachedConversations = orleans ? 0 : parse.GetValue(_cacheConversations),
            // Through a cluster, the silo's conversation engine generates; this client only maps and checks.
            BatchSlots = orleans ? 0 : options.MaxConcurrentRequests,
            MaxQueuedRequests = options.MaxQueuedRequests,
            PrefillChunkTokens = parse.GetValue(_prefillChunk),
        };
        using var client = new OnnxGptChatClient(model, clientOptions, new WriterLoggerProvider(stderr, LogLevel.Warning).CreateLogger("onnxgpt.chat"));
        var cluster = orleans ? StartCluster(parse, asSilo, model, options, stderr) : null;
        OpenAiServer server;
        try
        {
            IReplySource replies = cluster is null ? new LocalReplies(client)
                : new ClusterReplies(new Orleans.Client.OnnxGptClusterChatClient(cluster.Grains, new Orleans.Client.ClusterChatClientOptions { ModelId = client.ModelId }));
            server = OpenAiServer.StartAsync(client, replies, options, stdout, log).GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            cluster?.DisposeAsync().AsTask().GetAwaiter().GetResult();
            if (e is IOException)
            {
                throw new OnnxGptException($"cannot listen on {options.Urls}: {e.Message}", e);
            }

            throw;
        }

        try
        {
            if (cluster is not null)
            {
                stdout.WriteLine($"  orleans: {cluster.Description}");
            }

            stdout.WriteLine($"serving '{client.ModelId}' ({model}) on {string.Join(", ", server.Urls)}; Ctrl+C stops.");
            if (options.WebUi && server.Urls.Count > 0)
            {
                stdout.WriteLine($"  in a browser: chat at {server.Urls[0]}/, dashboard at {server.Urls[0]}/dashboard");
            }

            if (options.Telemetry.PrometheusEndpoint)
            {
                stdout.WriteLine($"  metrics: {server.Urls[0].TrimEnd('/')}{options.Telemetry.MetricsPath} (Prometheus text format)");
            }
            stdout.WriteLine(cluster is not null ? $"  generation: on the cluster's silos (conversation by the {ClusterReplies.ConversationHeader} header, or a hash of its start)"
                : client.Engine is { } engine
                ? $"  batch engine: {engine.Slots} slots of {engine.SlotTokens} tokens decoded together, KV cache {engine.CacheBytes / 1048576.0:F1} MiB in {model.CacheDevice} memory; queue {options.MaxQueuedRequests}"
                : $"  portable graph: each request on its own generator, {options.MaxConcurrentRequests} at once (the batch engine needs --graph fused); queue {options.MaxQueuedRequests}");
            if (speculation is not null)
            {
                stdout.WriteLine($"  speculative decoding: {(speculation.DraftModel is { } d ? $"draft {d.ModelPath}" : "")}" +
                    $"{(speculation.DraftModel is not null && speculation.PromptLookup > 0 ? ", " : "")}" +
                    $"{(speculation.PromptLookup > 0 ? $"prompt lookup of up to {speculation.PromptLookup} tokens" : "")}; " +
                    $"{(client.Engine is null ? "for every request (each on its own generator)" : "for a request while it is the only one decoding in the batch engine")}");
            }

            stdout.WriteLine($"  chat template: {(ReferenceEquals(client.Template, ChatTemplate.Default) ? "the plain default" : "from the model's metadata")}; " +
                $"defaults: {Describe(GenerationOptions.FromDefaults(model.GenerationDefaults))}");
            server.WaitForShutdownAsync().GetAwaiter().GetResult();
            if (client.Engine?.GetStatistics() is { } stats)
            {
                stdout.WriteLine($"batch engine: {stats.Steps} steps, {stats.GeneratedTokens} tokens generated, {stats.FedTokens} fed, {stats.InterruptedRuns} decoding runs interrupted for arrivals; " +
                    $"{stats.ManagedBytesPerToken:F1} managed bytes per token on its thread in steady state");
            }

            return ExitCodes.Success;
        }
        finally
        {
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            cluster?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private ClusterHost StartCluster(ParseResult parse, bool asSilo, Runtime.Model.GptModel model, ServerOptions options, TextWriter stderr)
    {
        var settings = new ClusterSettings
        {
            IsSilo = asSilo,
            SiloPort = parse.GetValue(_siloPort),
            GatewayPort = parse.GetValue(_gatewayPort),
            PrimarySiloPort = parse.GetValue(_primarySilo),
            GatewayPorts = parse.GetValue(_gateways) is { Length: > 0 } ports ? ports : [30000],
            ClusterId = parse.GetRequiredValue(_clusterId),
            StorageDirectory = parse.GetValue(_orleansStorage) is { } dir ? Path.GetFullPath(dir) : null,
            IdleTimeout = TimeSpan.FromSeconds(parse.GetValue(_idleTimeout)),
        };
        return (asSilo
            ? ClusterHost.StartSiloAsync(model, options.MaxConcurrentRequests, parse.GetValue(_prefillChunk), settings, stderr, CancellationToken.None)
            : ClusterHost.StartClientAsync(settings, stderr, CancellationToken.None)).GetAwaiter().GetResult();
    }

    private static string Describe(GenerationOptions o) =>
        $"max_tokens {o.MaxNewTokens}, {(o.IsGreedy ? "greedy" : $"temperature {o.Temperature}, top_k {o.TopK}, top_p {o.TopP}")}";
}

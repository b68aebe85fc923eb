using Microsoft.Extensions.Logging;
using OnnxGpt.Cli.Serving;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Cli.Commands;

/// <summary><c>onnxgpt serve --model DIR</c>: an OpenAI-compatible HTTP server (chat and text completions) until Ctrl+C.</summary>
public sealed class ServeCommand : ICommand
{
    public string Name => "serve";

    public string Summary => "serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions)";

    public string Usage => """
        usage: onnxgpt serve --model DIR [--urls URLS] [--model-id ID] [--max-tokens-limit N] [--max-body-bytes N]
                             [--parallel N] [--queue N] [--cache-conversations N] [--provider LIST] [--threads N] [--quiet]
          --model DIR              a model folder (or .onnx file); it needs a tokenizer
          --urls URLS              addresses to listen on, ';'-separated (default http://127.0.0.1:8080; port 0 picks one)
          --model-id ID            the model's id in requests and /v1/models (default: the folder's name)
          --max-tokens-limit N     refuse requests asking for more than N tokens (default 2048)
          --max-body-bytes N       refuse request bodies larger than N bytes with 413 (default 1048576)
          --parallel N             requests generating at once, each on its own generator (default 4)
          --queue N                requests waiting for a slot before the server answers 503 (default 64)
          --cache-conversations N  finished conversations kept with their KV caches for reuse (default 4; 0: off)
        SESSION
          --quiet                  log warnings and errors only, not one line per request
        Endpoints: GET /v1/models, POST /v1/completions, POST /v1/chat/completions ("stream": true for server-sent events).
        """.Replace("SESSION", RuntimeArgs.SessionUsage, StringComparison.Ordinal);

    public IReadOnlyCollection<string> Flags => ["quiet", RuntimeArgs.FallbackFlag, RuntimeArgs.OrtWarningsFlag];

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        string modelPath = args.Required("model");
        var defaults = new ServerOptions();
        var options = new ServerOptions
        {
            Urls = args.Option("urls") ?? defaults.Urls,
            MaxTokensLimit = args.Int("max-tokens-limit") ?? defaults.MaxTokensLimit,
            MaxRequestBodyBytes = args.Long("max-body-bytes") ?? defaults.MaxRequestBodyBytes,
            MaxConcurrentRequests = args.Int("parallel") ?? defaults.MaxConcurrentRequests,
            MaxQueuedRequests = args.Int("queue") ?? defaults.MaxQueuedRequests,
        };
        string? modelId = args.Option("model-id");
        int cached = args.Int("cache-conversations") ?? new OnnxGptChatClientOptions().MaxCachedConversations;
        bool quiet = args.Flag("quiet");
        var session = RuntimeArgs.ReadSession(args);
        args.EnsureAllRead();
        try
        {
            options.Validate();
            new OnnxGptChatClientOptions { MaxCachedConversations = cached }.Validate();
        }
        catch (ArgumentException e)
        {
            throw new CliUsageException(e.Message);
        }

        var log = quiet ? LogLevel.Warning : LogLevel.Information;
        using var model = RuntimeArgs.Load(modelPath, session, stderr);
        using var client = new OnnxGptChatClient(model, new OnnxGptChatClientOptions { ModelId = modelId, MaxCachedConversations = cached },
            new WriterLoggerProvider(stderr, LogLevel.Warning).CreateLogger("onnxgpt.chat"));
        OpenAiServer server;
        try
        {
            server = OpenAiServer.StartAsync(client, options, stdout, log).GetAwaiter().GetResult();
        }
        catch (IOException e)
        {
            throw new OnnxGptException($"cannot listen on {options.Urls}: {e.Message}", e);
        }

        try
        {
            stdout.WriteLine($"serving '{client.ModelId}' ({model}) on {string.Join(", ", server.Urls)}; Ctrl+C stops.");
            stdout.WriteLine($"  chat template: {(ReferenceEquals(client.Template, ChatTemplate.Default) ? "the plain default" : "from the model's metadata")}; " +
                $"defaults: {Describe(GenerationOptions.FromDefaults(model.GenerationDefaults))}");
            server.WaitForShutdownAsync().GetAwaiter().GetResult();
            return 0;
        }
        finally
        {
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static string Describe(GenerationOptions o) =>
        $"max_tokens {o.MaxNewTokens}, {(o.IsGreedy ? "greedy" : $"temperature {o.Temperature}, top_k {o.TopK}, top_p {o.TopP}")}";
}

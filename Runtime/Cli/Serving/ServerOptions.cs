namespace OnnxGpt.Cli.Serving;

/// <summary>How <see cref="OpenAiServer"/> listens and what it accepts.</summary>
public sealed record ServerOptions
{
    /// <summary>Addresses to listen on (semicolon-separated); port 0 picks a free port (see <see cref="OpenAiServer.Urls"/>).</summary>
    public string Urls { get; init; } = "http://127.0.0.1:8080";

    /// <summary>Largest request body accepted, in bytes; larger ones get 413.</summary>
    public long MaxRequestBodyBytes { get; init; } = 1 << 20;

    /// <summary>Largest <c>max_tokens</c> a request may ask for; more gets 400.</summary>
    public int MaxTokensLimit { get; init; } = 2048;

    /// <summary>
    /// Requests generating at the same time; others wait in the queue. On a fused graph these are the batch engine's
    /// slots, decoded together (the server's chat client must be created with as many <c>BatchSlots</c>); on a
    /// portable graph, each request runs its own generator.
    /// </summary>
    public int MaxConcurrentRequests { get; init; } = 4;

    /// <summary>Requests that may wait for a free slot; beyond that the server answers 503 at once.</summary>
    public int MaxQueuedRequests { get; init; } = 64;

    /// <summary>
    /// Serve the browser pages beside the API: the chat page at <c>/</c>, the dashboard at <c>/dashboard</c> (with its
    /// JSON at <c>/dashboard/stats</c>) and their files under <c>/ui/</c>. False (<c>--no-ui</c>): those routes are 404.
    /// </summary>
    public bool WebUi { get; init; } = true;

    /// <summary>
    /// Origins (<c>scheme://host[:port]</c>) whose pages may call the API from a browser (CORS); <c>*</c> allows any.
    /// Empty (the default): a browser request that comes from another origin is refused with 403.
    /// </summary>
    public IReadOnlyList<string> CorsOrigins { get; init; } = [];

    /// <summary>What the server exports of its telemetry (nothing by default).</summary>
    public ServerTelemetry Telemetry { get; init; } = new();

    /// <summary>
    /// How long a request body may take before it must arrive at <see cref="OpenAiServer.MinBodyBytesPerSecond"/>; a
    /// body that trickles in slower is cut off with 408 (more than 1 s; default 5 s, as Kestrel).
    /// </summary>
    public TimeSpan BodyGracePeriod { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Checks the limits.</summary>
    /// <exception cref="ArgumentException">A limit is out of range or no address is given; the message names it.</exception>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Urls))
        {
            throw new ArgumentException("give at least one address to listen on, e.g. http://127.0.0.1:8080.", nameof(Urls));
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxRequestBodyBytes, nameof(MaxRequestBodyBytes));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxTokensLimit, nameof(MaxTokensLimit));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxConcurrentRequests, nameof(MaxConcurrentRequests));
        ArgumentOutOfRangeException.ThrowIfNegative(MaxQueuedRequests, nameof(MaxQueuedRequests));
        ArgumentNullException.ThrowIfNull(CorsOrigins, nameof(CorsOrigins));
        foreach (string origin in CorsOrigins)
        {
            CrossOriginPolicy.ValidateOrigin(origin);
        }
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(BodyGracePeriod, TimeSpan.FromSeconds(1), nameof(BodyGracePeriod));
    }
}

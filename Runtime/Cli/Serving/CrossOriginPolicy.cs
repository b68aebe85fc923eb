using Microsoft.AspNetCore.Http;

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// Who may call the server from a browser page. A request carrying an <c>Origin</c> header other than the server's
/// own (a page of another site, or a sandboxed page's <c>null</c>) is refused with 403 unless
/// <see cref="ServerOptions.CorsOrigins"/> names that origin (or <c>*</c>); allowed ones get CORS headers and their
/// preflight requests an answer. Programs that send no <c>Origin</c> (curl, the OpenAI clients) are not affected.
/// Refusing, rather than only leaving the CORS headers out, also keeps another site's page from making this server
/// generate (a plain-text POST needs no preflight).
/// </summary>
internal sealed class CrossOriginPolicy(IReadOnlyList<string> origins)
{
    private const string Any = "*";

    private readonly bool _any = origins.Contains(Any);
    private readonly HashSet<string> _allowed = origins.Where(o => o != Any).Select(Normalize).ToHashSet(StringComparer.Ordinal);

    /// <summary>Checks one <c>--cors-origin</c> value: <c>*</c>, or <c>scheme://host[:port]</c> with no path.</summary>
    /// <exception cref="ArgumentException">It is neither; the message shows the value and the form expected.</exception>
    public static void ValidateOrigin(string origin)
    {
        if (OriginProblem(origin) is { } problem)
        {
            throw new ArgumentException(problem, nameof(ServerOptions.CorsOrigins));
        }
    }

    /// <summary>What is wrong with <paramref name="origin"/> as an allowed origin, or null when it is one (or <c>*</c>).</summary>
    public static string? OriginProblem(string origin) =>
        origin == Any
        || (Uri.TryCreate(origin, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            && uri.AbsolutePath == "/" && uri.Query.Length == 0 && uri.Fragment.Length == 0 && uri.UserInfo.Length == 0 && !origin.EndsWith('/'))
            ? null
            : $"the CORS origin '{origin}' is not an origin: give scheme://host[:port] with no path (e.g. http://localhost:3000), or * for any.";

    /// <summary>Middleware: refuses, answers a preflight, or adds the CORS headers and goes on.</summary>
    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var request = context.Request;
        string? origin = request.Headers.Origin;
        if (string.IsNullOrEmpty(origin) || IsSameOrigin(origin, request))
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        if (!_any && !(Uri.TryCreate(origin, UriKind.Absolute, out _) && _allowed.Contains(Normalize(origin))))
        {
            var refusal = new OpenAiError(StatusCodes.Status403Forbidden,
                $"a browser request from the origin '{origin}' was refused: this server answers pages of other origins only when started with --cors-origin {origin} (or --cors-origin '*').",
                code: "cross_origin_refused");
            context.Response.StatusCode = refusal.Status;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(refusal.ToJson().ToJsonString(), context.RequestAborted).ConfigureAwait(false);
            return;
        }

        var headers = context.Response.Headers;
        headers.AccessControlAllowOrigin = _any ? Any : origin;
        headers.Vary = "Origin";
        if (HttpMethods.IsOptions(request.Method) && request.Headers.ContainsKey("Access-Control-Request-Method"))
        {
            headers.AccessControlAllowMethods = "GET, POST";
            headers.AccessControlAllowHeaders = request.Headers.AccessControlRequestHeaders.Count > 0
                ? request.Headers.AccessControlRequestHeaders.ToString()
                : "authorization, content-type";
            headers.AccessControlMaxAge = "600";
            context.Response.StatusCode = StatusCodes.Status204NoContent;
            return;
        }

        await next(context).ConfigureAwait(false);
    }

    private static bool IsSameOrigin(string origin, HttpRequest request) =>
        Uri.TryCreate(origin, UriKind.Absolute, out var from)
        && Uri.TryCreate($"{request.Scheme}://{request.Host.Value}", UriKind.Absolute, out var own)
        && from.Scheme == own.Scheme
        && string.Equals(from.Authority, own.Authority, StringComparison.OrdinalIgnoreCase);

    /// <summary>An origin as browsers send it: lower-case scheme and host, the default port left out.</summary>
    private static string Normalize(string origin)
    {
        var uri = new Uri(origin, UriKind.Absolute);
        return $"{uri.Scheme}://{uri.Authority}".ToLowerInvariant();
    }
}

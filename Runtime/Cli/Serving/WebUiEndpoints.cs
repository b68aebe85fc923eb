using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// The browser pages of <see cref="OpenAiServer"/>, on the API's own address: the chat page at <c>/</c>, the
/// dashboard at <c>/dashboard</c>, its figures at <c>/dashboard/stats</c> (JSON, <see cref="ServerStats"/>), and the
/// pages' files at <c>/ui/NAME</c>. Every response carries a strict Content-Security-Policy: scripts, styles and
/// images from this server only, requests to this server only, no inline script or style, no frames, and Trusted
/// Types required, so no string can reach an HTML sink such as <c>innerHTML</c>.
/// </summary>
internal static class WebUiEndpoints
{
    /// <summary>The Content-Security-Policy of every page, file and the stats.</summary>
    public const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

    /// <summary>Maps the routes; the server's other routes are unaffected.</summary>
    public static void Map(IEndpointRouteBuilder routes, OpenAiEndpoints api, string modelId)
    {
        var assets = WebUiAssets.Embedded;
        routes.MapGet("/", context => ServeAsync(context, assets.Find("chat.html")));
        routes.MapGet("/dashboard", context => ServeAsync(context, assets.Find("dashboard.html")));
        routes.MapGet("/ui/{name}", context => ServeAsync(context, assets.Find(context.Request.RouteValues["name"] as string ?? "")));
        routes.MapGet("/dashboard/stats", context =>
        {
            var gate = api.Gate;
            JsonObject snapshot = api.Client.Engine is { } engine && engine.GetStatistics() is var s
                ? api.Stats.Snapshot(modelId, s.ActiveSequences, s.QueuedRequests, s.Slots, engine.Options.MaxQueuedRequests, (s.ActiveSequences, s.Slots))
                : api.Stats.Snapshot(modelId, gate.Generating, gate.Waiting, gate.Parallel, gate.Queue);
            SecureHeaders(context.Response);
            context.Response.Headers.CacheControl = "no-store";
            context.Response.ContentType = "application/json";
            return context.Response.WriteAsync(snapshot.ToJsonString(), context.RequestAborted);
        });
    }

    private static Task ServeAsync(HttpContext context, WebUiAssets.Asset? asset)
    {
        if (asset is null)
        {
            return OpenAiEndpoints.NotFoundAsync(context);
        }

        var response = context.Response;
        SecureHeaders(response);
        response.Headers.CacheControl = "no-cache";   // revalidate: a new tool version serves new files at once
        response.Headers.ETag = asset.ETag;
        if (context.Request.Headers.IfNoneMatch == asset.ETag)
        {
            response.StatusCode = StatusCodes.Status304NotModified;
            return Task.CompletedTask;
        }

        response.ContentType = asset.ContentType;
        response.ContentLength = asset.Content.Length;
        return response.Body.WriteAsync(asset.Content, context.RequestAborted).AsTask();
    }

    private static void SecureHeaders(HttpResponse response)
    {
        var headers = response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers.XFrameOptions = "DENY";
        headers["Referrer-Policy"] = "no-referrer";
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        headers["Cross-Origin-Resource-Policy"] = "same-origin";
    }
}

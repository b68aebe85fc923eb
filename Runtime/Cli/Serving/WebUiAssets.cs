using System.Reflection;
using System.Security.Cryptography;

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// The browser pages' files (<c>Serving/WebUi/</c> in the source), compiled into the tool as embedded resources
/// named <c>webui/NAME</c>: nothing to build or install beside the tool. Read once, kept in memory with their
/// content type and an ETag.
/// </summary>
internal sealed class WebUiAssets
{
    private const string Prefix = "webui/";

    private static readonly Dictionary<string, string> ContentTypes = new(StringComparer.OrdinalIgnoreCase)
    {
        [".html"] = "text/html; charset=utf-8",
        [".js"] = "text/javascript; charset=utf-8",
        [".css"] = "text/css; charset=utf-8",
        [".svg"] = "image/svg+xml",
    };

    private readonly Dictionary<string, Asset> _assets;

    private WebUiAssets(Dictionary<string, Asset> assets) => _assets = assets;

    /// <summary>The files compiled into this assembly.</summary>
    public static WebUiAssets Embedded { get; } = Load(typeof(WebUiAssets).Assembly);

    /// <summary>The file names (e.g. <c>chat.js</c>).</summary>
    public IEnumerable<string> Names => _assets.Keys;

    /// <summary>The file called <paramref name="name"/>, or null.</summary>
    public Asset? Find(string name) => _assets.GetValueOrDefault(name);

    private static WebUiAssets Load(Assembly assembly)
    {
        var assets = new Dictionary<string, Asset>(StringComparer.Ordinal);
        foreach (string resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)))
        {
            string name = resource[Prefix.Length..];
            if (!ContentTypes.TryGetValue(Path.GetExtension(name), out var type))
            {
                throw new InvalidOperationException($"the embedded web UI file '{name}' has no known content type; add its extension to {nameof(WebUiAssets)}.");
            }

            using var stream = assembly.GetManifestResourceStream(resource)!;
            using var bytes = new MemoryStream();
            stream.CopyTo(bytes);
            byte[] content = bytes.ToArray();
            assets[name] = new Asset(content, type, $"\"{Convert.ToHexStringLower(SHA256.HashData(content), 0, 8)}\"");
        }

        return new WebUiAssets(assets);
    }

    /// <summary>One file: its bytes, its content type and its ETag (a hash of the bytes, quoted).</summary>
    public sealed record Asset(byte[] Content, string ContentType, string ETag);
}

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// How <c>serve --orleans</c> joins its cluster: localhost clustering (one machine: the first silo keeps the membership,
/// the others and the clients find it by port), the role of this process, and where conversations are saved.
/// </summary>
internal sealed record ClusterSettings
{
    /// <summary>Whether this process is a silo (serves conversations on its own engine) or only a client of the cluster.</summary>
    public bool IsSilo { get; init; } = true;

    /// <summary>The silo-to-silo port of this silo.</summary>
    public int SiloPort { get; init; } = 11111;

    /// <summary>The port clients of the cluster connect to on this silo.</summary>
    public int GatewayPort { get; init; } = 30000;

    /// <summary>The silo port of the cluster's first silo (which keeps the membership in localhost clustering); null: this silo is the first.</summary>
    public int? PrimarySiloPort { get; init; }

    /// <summary>A client's gateways: silo gateway ports on this machine.</summary>
    public IReadOnlyList<int> GatewayPorts { get; init; } = [30000];

    /// <summary>The cluster's id (silos and clients of one cluster share it).</summary>
    public string ClusterId { get; init; } = "onnxgpt";

    /// <summary>
    /// The folder conversations are saved in (every silo of the cluster names the same one), or null for Orleans'
    /// in-memory storage, whose state is lost with the silo that holds it.
    /// </summary>
    public string? StorageDirectory { get; init; }

    /// <summary>An idle conversation is deactivated (and its slot released) after this long.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(10);
}

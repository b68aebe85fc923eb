using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using OnnxGpt.Runtime.Diagnostics;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// What <c>onnxgpt serve</c> exports of the runtime's telemetry (<see cref="OnnxGptTelemetry"/>: gen-AI token usage,
/// request duration, time to first token, time per output token, queue length, active sequences, batch size) and of
/// ASP.NET Core's own: a Prometheus scraping endpoint and/or OTLP, each off unless asked for.
/// </summary>
public sealed record ServerTelemetry
{
    /// <summary>Serve the metrics at <see cref="MetricsPath"/> in Prometheus' text format (<c>--metrics</c>).</summary>
    public bool PrometheusEndpoint { get; init; }

    /// <summary>The scraping endpoint's path.</summary>
    public string MetricsPath { get; init; } = "/metrics";

    /// <summary>Send metrics and traces by OTLP to this collector (<c>--otlp-endpoint</c>); null sends nothing.</summary>
    public Uri? OtlpEndpoint { get; init; }

    /// <summary>OTLP over gRPC (the default, port 4317) or HTTP/protobuf (port 4318).</summary>
    public OtlpExportProtocol OtlpProtocol { get; init; } = OtlpExportProtocol.Grpc;

    /// <summary>True when anything is exported.</summary>
    public bool Enabled => PrometheusEndpoint || OtlpEndpoint is not null;

    /// <summary>Adds OpenTelemetry with the asked-for exporters to the server's services.</summary>
    internal void AddTo(IServiceCollection services)
    {
        if (!Enabled)
        {
            return;
        }

        var otel = services.AddOpenTelemetry();
        otel.WithMetrics(metrics =>
        {
            metrics.AddMeter(OnnxGptTelemetry.SourceName, "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel");
            if (PrometheusEndpoint)
            {
                metrics.AddPrometheusExporter();
            }

            if (OtlpEndpoint is { } endpoint)
            {
                metrics.AddOtlpExporter(o => Configure(o, endpoint, "v1/metrics"));
            }
        });
        if (OtlpEndpoint is { } traces)
        {
            otel.WithTracing(tracing => tracing
                .AddSource(OnnxGptTelemetry.SourceName, "Microsoft.AspNetCore")
                .AddOtlpExporter(o => Configure(o, traces, "v1/traces")));
        }
    }

    /// <summary>Maps the scraping endpoint, when asked for.</summary>
    internal void MapTo(WebApplication app)
    {
        if (PrometheusEndpoint)
        {
            app.MapPrometheusScrapingEndpoint(MetricsPath);
        }
    }

    /// <summary>gRPC takes the collector's address; HTTP/protobuf a URL per signal, which set in code is used as given.</summary>
    private void Configure(OtlpExporterOptions options, Uri endpoint, string signalPath)
    {
        options.Protocol = OtlpProtocol;
        options.Endpoint = OtlpProtocol == OtlpExportProtocol.HttpProtobuf && endpoint.AbsolutePath is "/" or ""
            ? new Uri(endpoint, signalPath)
            : endpoint;
    }
}

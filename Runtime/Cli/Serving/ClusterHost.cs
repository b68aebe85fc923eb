using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OnnxGpt.Orleans.Hosting;
using OnnxGpt.Orleans.Storage;
using OnnxGpt.Runtime.Model;

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// The Orleans side of <c>serve --orleans</c>: a silo serving conversations on this process's model and batch engine
/// (<see cref="OnnxGptSiloBuilderExtensions.AddOnnxGptConversations"/>), or a client of a cluster; either way the grain
/// factory the server's requests go through. Localhost clustering (<see cref="ClusterSettings"/>); a production cluster
/// is an application host of its own (docs/scale-out.md).
/// </summary>
internal sealed class ClusterHost : IAsyncDisposable
{
    private readonly IHost _host;

    private ClusterHost(IHost host, string description)
    {
        _host = host;
        Description = description;
        Grains = host.Services.GetRequiredService<IGrainFactory>();
    }

    /// <summary>The grain factory of the silo or client.</summary>
    public IGrainFactory Grains { get; }

    /// <summary>What this process is in the cluster, for the start-up lines.</summary>
    public string Description { get; }

    /// <summary>Starts a silo serving conversations on <paramref name="model"/> (shared, not owned) with <paramref name="slots"/> engine slots.</summary>
    /// <exception cref="OnnxGptException">The silo cannot start (a port in use, the first silo unreachable, a model the engine cannot run).</exception>
    public static Task<ClusterHost> StartSiloAsync(GptModel model, int slots, int prefillChunk, ClusterSettings settings, TextWriter log, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(settings);
        var builder = Builder(log);
        builder.UseOrleans(silo =>
        {
            var primary = settings.PrimarySiloPort is { } port ? new IPEndPoint(IPAddress.Loopback, port) : null;
            silo.UseLocalhostClustering(settings.SiloPort, settings.GatewayPort, primary, serviceId: settings.ClusterId, clusterId: settings.ClusterId);
            silo.AddOnnxGptConversations(o =>
            {
                o.Model = model;
                o.Slots = slots;
                o.PrefillChunkTokens = prefillChunk;
                o.IdleTimeout = settings.IdleTimeout;
            });
            if (settings.StorageDirectory is { } directory)
            {
                silo.AddOnnxGptFileGrainStorage(OnnxGptSiloBuilderExtensions.StorageName, directory);
            }
            else
            {
                silo.AddMemoryGrainStorage(OnnxGptSiloBuilderExtensions.StorageName);
            }
        });
        string role = $"silo on ports {settings.SiloPort} (silos) and {settings.GatewayPort} (clients), " +
            (settings.PrimarySiloPort is { } first ? $"joined to the first silo at port {first}" : "the cluster's first silo") +
            $"; {slots} conversation slots; conversations saved {(settings.StorageDirectory is { } d ? $"in {d}" : "in memory (lost with the silo holding them: give --orleans-storage)")}";
        return StartAsync(builder, role, settings, cancellationToken);
    }

    /// <summary>Starts a client of a cluster (no engine of its own).</summary>
    /// <exception cref="OnnxGptException">No gateway answers.</exception>
    public static Task<ClusterHost> StartClientAsync(ClusterSettings settings, TextWriter log, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var builder = Builder(log);
        builder.UseOrleansClient(client => client.UseLocalhostClustering([.. settings.GatewayPorts], settings.ClusterId, settings.ClusterId));
        return StartAsync(builder, $"client of the cluster through gateway port(s) {string.Join(", ", settings.GatewayPorts)}", settings, cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _host.StopAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        finally
        {
            _host.Dispose();
        }
    }

    private static HostApplicationBuilder Builder(TextWriter log)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings { ApplicationName = "onnxgpt" });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new WriterLoggerProvider(log, LogLevel.Warning));
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        // Orleans warns while a cluster forms (a silo not yet reachable): only its errors are worth a line here.
        builder.Logging.AddFilter("Orleans", LogLevel.Error);
        return builder;
    }

    private static async Task<ClusterHost> StartAsync(HostApplicationBuilder builder, string role, ClusterSettings settings, CancellationToken cancellationToken)
    {
        var host = builder.Build();
        try
        {
            await host.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException and not OnnxGptException)
        {
            host.Dispose();
            throw new OnnxGptException($"--orleans: the {(settings.IsSilo ? "silo" : "cluster client")} cannot start ({role}): {e.GetType().Name}: {e.Message}", e);
        }
        catch
        {
            host.Dispose();
            throw;
        }

        return new ClusterHost(host, role);
    }
}

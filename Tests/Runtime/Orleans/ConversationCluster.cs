using Microsoft.Extensions.DependencyInjection;
using OnnxGpt.Orleans.Client;
using OnnxGpt.Orleans.Conversations;
using OnnxGpt.Orleans.Hosting;
using OnnxGpt.Orleans.Storage;
using OnnxGpt.Tests.Support;
using Orleans.Configuration;
using Orleans.TestingHost;

namespace OnnxGpt.Tests.Runtime.Orleans;

/// <summary>
/// Silos in this process (Orleans' InProcessTestCluster: in-memory transport, one membership table) serving
/// conversations on the shipped Shakespeare model exported as a fused graph, conversations saved in files (which
/// outlive any silo, as a database would), and a client with short stall and retry times.
/// </summary>
internal sealed class ConversationCluster : IAsyncDisposable
{
    private readonly TempFolder _storage;

    private ConversationCluster(InProcessTestCluster cluster, TempFolder storage, ConversationClientOptions clientOptions)
    {
        Cluster = cluster;
        _storage = storage;
        Client = new ConversationClient(cluster.Client, clientOptions);
    }

    public InProcessTestCluster Cluster { get; }

    public ConversationClient Client { get; }

    /// <summary>
    /// The client side's tolerances in these tests: a lost silo is told after 5 s without a heartbeat (sent every
    /// 250 ms). 2 s was once too short on a loaded machine: a live silo's reply broke off for want of a heartbeat.
    /// </summary>
    public static ConversationClientOptions ClientOptions { get; } = new() { StallTimeout = TimeSpan.FromSeconds(5), RetryUnstartedFor = TimeSpan.FromSeconds(30) };

    public static async Task<ConversationCluster> StartAsync(string model, int silos, int slots, TimeSpan? idleTimeout = null)
    {
        var storage = new TempFolder();
        var builder = new InProcessTestClusterBuilder((short)silos);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddOnnxGptConversations(o =>
            {
                o.ModelPath = model;
                o.Slots = slots;
                o.IdleTimeout = idleTimeout ?? TimeSpan.FromMinutes(5);
                o.HeartbeatInterval = TimeSpan.FromMilliseconds(250);
            });
            silo.AddOnnxGptFileGrainStorage(OnnxGptSiloBuilderExtensions.StorageName, storage.Path);
        });
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return new ConversationCluster(cluster, storage, ClientOptions);
    }

    /// <summary>The silo with this identity (a turn's <see cref="ConversationUpdate.Silo"/>).</summary>
    public InProcessSiloHandle Silo(string identity) =>
        Cluster.Silos.FirstOrDefault(s => s.SiloAddress.ToString() == identity)
        ?? throw new AssertFailedException($"no live silo is {identity}; silos: {string.Join(", ", Cluster.Silos.Select(s => s.SiloAddress))}");

    /// <summary>Slots held or reserved on a silo.</summary>
    public static int Taken(InProcessSiloHandle silo) => silo.ServiceProvider.GetRequiredService<SlotLedger>().Taken;

    /// <summary>Kills the silo (no shutdown: a crash) and starts a fresh one in its place, so the cluster keeps its size.</summary>
    public async Task KillAndReplaceAsync(string identity)
    {
        await Cluster.KillSiloAsync(Silo(identity));
        await Cluster.StartAdditionalSiloAsync();
    }

    /// <summary>Runs one turn to its end: the text of its tokens and its completion.</summary>
    public async Task<(string Text, ConversationUpdate Completed)> TurnAsync(string conversation, ConversationTurn turn, CancellationToken cancellationToken)
    {
        var text = new System.Text.StringBuilder();
        await foreach (var update in Client.ContinueAsync(conversation, turn, cancellationToken))
        {
            if (update.Kind == ConversationUpdateKind.Completed)
            {
                Assert.AreEqual(text.ToString(), update.Reply, "the completion's reply is the streamed text");
                return (text.ToString(), update);
            }

            text.Append(update.Text);
        }

        throw new AssertFailedException($"conversation {conversation}: the stream ended without a completion");
    }

    public async ValueTask DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        _storage.Dispose();
    }
}

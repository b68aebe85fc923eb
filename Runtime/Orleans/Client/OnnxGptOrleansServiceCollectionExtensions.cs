using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;

namespace OnnxGpt.Orleans.Client;

/// <summary>Registers the cluster's conversations as an <see cref="IChatClient"/>.</summary>
public static class OnnxGptOrleansServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="OnnxGptClusterChatClient"/> (over the application's <see cref="IGrainFactory"/>: an Orleans
    /// client's, <c>UseOrleansClient</c>, or a silo's own) as the <see cref="IChatClient"/>, through
    /// Microsoft.Extensions.AI's <c>AddChatClient</c>, and returns its builder, so middleware composes over it as over
    /// the one-machine <c>AddOnnxGptChatClient</c>: an application moves from one to the other by changing this line.
    /// </summary>
    public static ChatClientBuilder AddOnnxGptClusterChatClient(this IServiceCollection services, ClusterChatClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddSingleton(sp => new OnnxGptClusterChatClient(sp.GetRequiredService<IGrainFactory>(), options));
        return services.AddChatClient(sp => sp.GetRequiredService<OnnxGptClusterChatClient>());
    }
}

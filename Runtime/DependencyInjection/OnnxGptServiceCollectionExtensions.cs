// Microsoft.Extensions.* convention: AddXxx extension methods live in this namespace, so they show up wherever
// services are configured without another using directive.
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.DependencyInjection;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Registers OnnxGpt in a service collection through Microsoft.Extensions.AI's own registration
/// (<see cref="ChatClientBuilderServiceCollectionExtensions.AddChatClient(IServiceCollection, Func{IServiceProvider, IChatClient}, ServiceLifetime)"/>),
/// so M.E.AI's middleware composes over the model as over any provider:
/// <code>
/// services.AddOnnxGptChatClient(configuration.GetSection("OnnxGpt"))
///     .UseLogging()
///     .UseOpenTelemetry()
///     .UseDistributedCache()
///     .UseFunctionInvocation();
/// </code>
/// Two models in one application: <see cref="AddKeyedOnnxGptChatClient(IServiceCollection, string, IConfiguration, Action{OnnxGptOptions}?)"/>
/// with a key each, resolved with <c>GetRequiredKeyedService&lt;IChatClient&gt;(key)</c>.
/// </summary>
public static class OnnxGptServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="IOptions{OnnxGptOptions}"/> (validated when first read), the <see cref="GptModel"/> as a
    /// singleton loaded on first use (disposed with the container), one <see cref="OnnxGptChatClient"/> as a singleton,
    /// and <see cref="IChatClient"/> as M.E.AI's pipeline over it. Loggers come from <see cref="ILoggerFactory"/> when
    /// registered.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the options (after any configuration binding).</param>
    /// <returns>
    /// The pipeline's builder: chain M.E.AI's <c>Use...</c> middleware on it. Called again, the options add up and
    /// the newer pipeline replaces the older <see cref="IChatClient"/> registration; the model stays one.
    /// </returns>
    public static ChatClientBuilder AddOnnxGptChatClient(this IServiceCollection services, Action<OnnxGptOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        AddOptions(services, Options.Options.DefaultName, configuration: null, configure);
        services.TryAddSingleton(provider => LoadModel(provider, provider.GetRequiredService<IOptions<OnnxGptOptions>>().Value));
        services.TryAddSingleton(provider => CreateClient(provider, provider.GetRequiredService<IOptions<OnnxGptOptions>>().Value,
            provider.GetRequiredService<GptModel>()));
        RemoveChatClient(services, serviceKey: null);   // Called again, the newer pipeline replaces the older.
        return services.AddChatClient(provider => provider.GetRequiredService<OnnxGptChatClient>());
    }

    /// <summary>
    /// As <see cref="AddOnnxGptChatClient(IServiceCollection, Action{OnnxGptOptions}?)"/>, with the options bound from
    /// <paramref name="configuration"/>, typically <c>configuration.GetSection(OnnxGptOptions.SectionName)</c>.
    /// </summary>
    public static ChatClientBuilder AddOnnxGptChatClient(this IServiceCollection services, IConfiguration configuration, Action<OnnxGptOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<OnnxGptOptions>().Bind(configuration);
        return services.AddOnnxGptChatClient(configure);
    }

    /// <summary>
    /// Registers a model and its chat client under <paramref name="serviceKey"/>, beside others: named options
    /// (<c>IOptionsMonitor&lt;OnnxGptOptions&gt;.Get(serviceKey)</c>), a keyed <see cref="GptModel"/>, a keyed
    /// <see cref="OnnxGptChatClient"/> and a keyed <see cref="IChatClient"/> pipeline.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="serviceKey">The key to resolve with (<c>GetRequiredKeyedService&lt;IChatClient&gt;(serviceKey)</c>); also the options' name.</param>
    /// <param name="configure">Sets the options (after any configuration binding).</param>
    /// <returns>The pipeline's builder: chain M.E.AI's <c>Use...</c> middleware on it.</returns>
    public static ChatClientBuilder AddKeyedOnnxGptChatClient(this IServiceCollection services, string serviceKey, Action<OnnxGptOptions>? configure = null) =>
        AddKeyed(services, serviceKey, configuration: null, configure);

    /// <summary>
    /// As <see cref="AddKeyedOnnxGptChatClient(IServiceCollection, string, Action{OnnxGptOptions}?)"/>, with the options
    /// bound from <paramref name="configuration"/> (a section per model, e.g. <c>OnnxGpt:Models:small</c>).
    /// </summary>
    public static ChatClientBuilder AddKeyedOnnxGptChatClient(this IServiceCollection services, string serviceKey, IConfiguration configuration,
        Action<OnnxGptOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return AddKeyed(services, serviceKey, configuration, configure);
    }

    /// <summary>
    /// Registers the model and its chat client as <see cref="AddOnnxGptChatClient(IServiceCollection, Action{OnnxGptOptions}?)"/>
    /// does, for callers that do not chain middleware.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the options (after any configuration binding).</param>
    public static IServiceCollection AddOnnxGpt(this IServiceCollection services, Action<OnnxGptOptions>? configure = null)
    {
        services.AddOnnxGptChatClient(configure);
        return services;
    }

    /// <summary>
    /// As <see cref="AddOnnxGpt(IServiceCollection, Action{OnnxGptOptions}?)"/>, with the options bound from
    /// <paramref name="configuration"/>, typically <c>configuration.GetSection(OnnxGptOptions.SectionName)</c>.
    /// </summary>
    public static IServiceCollection AddOnnxGpt(this IServiceCollection services, IConfiguration configuration, Action<OnnxGptOptions>? configure = null)
    {
        services.AddOnnxGptChatClient(configuration, configure);
        return services;
    }

    private static ChatClientBuilder AddKeyed(IServiceCollection services, string serviceKey, IConfiguration? configuration, Action<OnnxGptOptions>? configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrEmpty(serviceKey);
        AddOptions(services, serviceKey, configuration, configure);
        services.TryAddKeyedSingleton(serviceKey, (provider, _) =>
            LoadModel(provider, provider.GetRequiredService<IOptionsMonitor<OnnxGptOptions>>().Get(serviceKey)));
        services.TryAddKeyedSingleton(serviceKey, (provider, _) =>
            CreateClient(provider, provider.GetRequiredService<IOptionsMonitor<OnnxGptOptions>>().Get(serviceKey),
                provider.GetRequiredKeyedService<GptModel>(serviceKey)));
        RemoveChatClient(services, serviceKey);
        return services.AddKeyedChatClient(serviceKey, provider => provider.GetRequiredKeyedService<OnnxGptChatClient>(serviceKey));
    }

    private static void RemoveChatClient(IServiceCollection services, string? serviceKey)
    {
        for (int i = services.Count - 1; i >= 0; i--)
        {
            var d = services[i];
            if (d.ServiceType == typeof(IChatClient) && (serviceKey is null ? !d.IsKeyedService : d.IsKeyedService && Equals(d.ServiceKey, serviceKey)))
            {
                services.RemoveAt(i);
            }
        }
    }

    private static void AddOptions(IServiceCollection services, string name, IConfiguration? configuration, Action<OnnxGptOptions>? configure)
    {
        var builder = services.AddOptions<OnnxGptOptions>(name);
        if (configuration is not null)
        {
            builder.Bind(configuration);
        }

        if (configure is not null)
        {
            builder.Configure(configure);
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<OnnxGptOptions>, OnnxGptOptionsValidator>());
    }

    private static GptModel LoadModel(IServiceProvider provider, OnnxGptOptions options)
    {
        var logger = provider.GetService<ILoggerFactory>()?.CreateLogger(typeof(GptModel).FullName!);
        return GptModel.Load(options.ModelPath!, options.ToSessionSettings(), logger);
    }

    private static OnnxGptChatClient CreateClient(IServiceProvider provider, OnnxGptOptions options, GptModel model)
    {
        var logger = provider.GetService<ILoggerFactory>()?.CreateLogger<OnnxGptChatClient>();
        var defaults = GenerationOptions.FromDefaults(model.GenerationDefaults);
        return new OnnxGptChatClient(model, options.ToChatClientOptions(defaults), logger);
    }
}

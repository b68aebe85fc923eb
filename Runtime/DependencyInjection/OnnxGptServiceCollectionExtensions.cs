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

/// <summary>Registers OnnxGpt in a service collection: <c>services.AddOnnxGpt(...)</c>.</summary>
public static class OnnxGptServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="IOptions{OnnxGptOptions}"/> (validated when first read), the <see cref="GptModel"/> as a
    /// singleton loaded on first use (disposed with the container), and one <see cref="OnnxGptChatClient"/> as a
    /// singleton, also as <see cref="IChatClient"/>. Loggers come from <see cref="ILoggerFactory"/> when registered.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the options (after any configuration binding).</param>
    public static IServiceCollection AddOnnxGpt(this IServiceCollection services, Action<OnnxGptOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var builder = services.AddOptions<OnnxGptOptions>();
        if (configure is not null)
        {
            builder.Configure(configure);
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<OnnxGptOptions>, OnnxGptOptionsValidator>());
        services.TryAddSingleton(provider =>
        {
            var options = provider.GetRequiredService<IOptions<OnnxGptOptions>>().Value;
            var logger = provider.GetService<ILoggerFactory>()?.CreateLogger(typeof(GptModel).FullName!);
            return GptModel.Load(options.ModelPath!, options.ToSessionSettings(), logger);
        });
        services.TryAddSingleton(provider =>
        {
            var options = provider.GetRequiredService<IOptions<OnnxGptOptions>>().Value;
            var model = provider.GetRequiredService<GptModel>();
            var logger = provider.GetService<ILoggerFactory>()?.CreateLogger<OnnxGptChatClient>();
            var defaults = GenerationOptions.FromDefaults(model.GenerationDefaults);
            return new OnnxGptChatClient(model, options.ToChatClientOptions(defaults), logger);
        });
        services.TryAddSingleton<IChatClient>(provider => provider.GetRequiredService<OnnxGptChatClient>());
        return services;
    }

    /// <summary>
    /// As <see cref="AddOnnxGpt(IServiceCollection, Action{OnnxGptOptions}?)"/>, with the options bound from
    /// <paramref name="configuration"/>, typically <c>configuration.GetSection(OnnxGptOptions.SectionName)</c>.
    /// </summary>
    public static IServiceCollection AddOnnxGpt(this IServiceCollection services, IConfiguration configuration, Action<OnnxGptOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<OnnxGptOptions>().Bind(configuration);
        return services.AddOnnxGpt(configure);
    }
}

using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using OnnxGpt.Orleans.Conversations;
using OnnxGpt.Orleans.Placement;
using Orleans.Configuration;

namespace OnnxGpt.Orleans.Hosting;

/// <summary>Makes a silo serve OnnxGpt conversations.</summary>
public static class OnnxGptSiloBuilderExtensions
{
    /// <summary>The grain storage provider conversations are saved in: register one under this name on every silo.</summary>
    public const string StorageName = "onnxgpt-conversations";

    /// <summary>
    /// Serves conversations on this silo: the model and its batch engine (started with the silo), the slot ledger and
    /// the <see cref="ISlotService"/> that publishes its free slots, the <see cref="EngineSlotPlacementDirector"/>
    /// that places new conversations by them, and idle deactivation after <see cref="ConversationSiloOptions.IdleTimeout"/>.
    /// Conversations are saved in the grain storage named <see cref="StorageName"/>, which the silo must register
    /// (e.g. <c>AddMemoryGrainStorage("onnxgpt-conversations")</c> on one machine, ADO.NET or Redis storage in production;
    /// see docs/scale-out.md). Every silo of the cluster serving conversations must call this with the same model.
    /// </summary>
    public static ISiloBuilder AddOnnxGptConversations(this ISiloBuilder builder, Action<ConversationSiloOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(configure);
        var services = builder.Services;
        services.AddOptions<ConversationSiloOptions>().Configure(configure).Validate(o =>
        {
            o.Validate();
            return true;
        });
        services.TryAddSingleton<ConversationEngineHost>();
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>>(sp => sp.GetRequiredService<ConversationEngineHost>());
        services.TryAddSingleton(sp => new SlotLedger(sp.GetRequiredService<IOptions<ConversationSiloOptions>>().Value.Slots));
        services.TryAddSingleton<ISlotServiceClient, SlotServiceClient>();
        builder.AddGrainService<SlotService>();
        builder.AddPlacementDirector<EngineSlotPlacement, EngineSlotPlacementDirector>();
        // Orleans' own idle collection must not come before the conversation's: the grain deactivates itself on time.
        services.AddSingleton<IConfigureOptions<GrainCollectionOptions>>(sp => new ConfigureOptions<GrainCollectionOptions>(o =>
        {
            var idle = sp.GetRequiredService<IOptions<ConversationSiloOptions>>().Value.IdleTimeout;
            o.ClassSpecificCollectionAge[typeof(ConversationGrain).FullName!] = idle + TimeSpan.FromMinutes(1);
        }));
        return builder;
    }
}

using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OnnxGpt.Orleans.Conversations;
using OnnxGpt.Orleans.Hosting;
using Orleans.Runtime.Placement;

namespace OnnxGpt.Orleans.Placement;

/// <summary>
/// Places a new conversation on a silo with a free engine slot. It asks the candidate silos' <see cref="ISlotService"/>
/// for their slots (all silos up to <see cref="ConversationSiloOptions.PlacementCandidates"/>, a random sample of that
/// many beyond), tries them from the most free slots down (this silo first among equals, so a front end that is
/// also a silo keeps the hop local), and answers with the first that reserves a slot for the conversation; if the
/// sample had none, it asks every silo. When no silo has a free slot it throws <see cref="ConversationCapacityException"/>:
/// the caller gets it and can retry later. A silo that does not answer within a second counts as full.
/// </summary>
internal sealed partial class EngineSlotPlacementDirector(ISlotServiceClient slots, IOptions<ConversationSiloOptions> options, ILogger<EngineSlotPlacementDirector> logger)
    : IPlacementDirector
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(1);

    public async Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silos = context.GetCompatibleSilos(target);
        if (silos.Length == 0)
        {
            throw new ConversationCapacityException($"conversation {target.GrainIdentity}: no silo of the cluster serves conversations.");
        }

        int candidates = options.Value.PlacementCandidates;
        SiloAddress[] asked = silos.Length <= candidates ? silos : [.. silos.OrderBy(_ => Random.Shared.Next()).Take(candidates)];
        if (await TryPlaceAsync(asked, target.GrainIdentity, context.LocalSilo).ConfigureAwait(false) is { } chosen)
        {
            return chosen;
        }

        if (asked.Length < silos.Length && await TryPlaceAsync(silos, target.GrainIdentity, context.LocalSilo).ConfigureAwait(false) is { } any)
        {
            return any;
        }

        throw new ConversationCapacityException(
            $"conversation {target.GrainIdentity.Key}: every slot of the {silos.Length} silo(s) serving conversations is held by a live conversation; " +
            "try again once idle ones have been deactivated, or add silos.");
    }

    private async Task<SiloAddress?> TryPlaceAsync(SiloAddress[] silos, GrainId conversation, SiloAddress local)
    {
        var loads = await Task.WhenAll(silos.Select(AskAsync)).ConfigureAwait(false);
        var order = Enumerable.Range(0, silos.Length)
            .Where(i => loads[i] is { Free: > 0 })
            .OrderByDescending(i => loads[i]!.Free)
            .ThenBy(i => silos[i].Equals(local) ? 0 : 1)
            .ThenBy(_ => Random.Shared.Next());
        foreach (int i in order)
        {
            try
            {
                if (await slots.On(silos[i]).TryReserveAsync(conversation).WaitAsync(AskTimeout).ConfigureAwait(false))
                {
                    LogPlaced(conversation, silos[i], loads[i]!.Free);
                    return silos[i];
                }
            }
            catch (Exception e) when (e is TimeoutException or OrleansException)
            {
                LogUnanswered(silos[i], e.Message);
            }
        }

        return null;
    }

    private async Task<SiloSlots?> AskAsync(SiloAddress silo)
    {
        try
        {
            return await slots.On(silo).GetSlotsAsync().WaitAsync(AskTimeout).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OrleansException)
        {
            LogUnanswered(silo, e.Message);
            return null;
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "OnnxGpt placement: conversation {Conversation} on {Silo} ({Free} free slots there).")]
    private partial void LogPlaced(GrainId conversation, SiloAddress silo, int free);

    [LoggerMessage(Level = LogLevel.Warning, Message = "OnnxGpt placement: silo {Silo} did not answer for its slots ({Reason}); counted as full.")]
    private partial void LogUnanswered(SiloAddress silo, string reason);
}

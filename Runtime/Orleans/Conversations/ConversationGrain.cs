using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.Extensions.Logging;
using OnnxGpt.Orleans.Hosting;
using OnnxGpt.Orleans.Placement;
using OnnxGpt.Runtime.Batching;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Generation;
using Orleans.Placement;

namespace OnnxGpt.Orleans.Conversations;

/// <summary>
/// The conversation grain (see <see cref="IConversationGrain"/>). Placed by <see cref="EngineSlotPlacement"/> and
/// never moved by Orleans' rebalancing (<see cref="ImmovableAttribute"/>): its live sequence is a slot of this silo's
/// <see cref="BatchEngine"/>, which it claims on activation and releases on deactivation. A turn's prompt is built
/// from the saved history (chat: every message through the model's template, as the library's chat client does;
/// text: the token history and the new text's tokens), so on a silo that never saw the conversation the first turn
/// rebuilds the cache from it, and on its own silo the engine runs only the new tokens. The state is written once
/// per turn, after the reply and before the completion is sent.
/// </summary>
[EngineSlotPlacement]
[Immovable]
internal sealed partial class ConversationGrain(
    [PersistentState("conversation", OnnxGptSiloBuilderExtensions.StorageName)] IPersistentState<ConversationState> state,
    ConversationEngineHost host,
    SlotLedger ledger,
    ILogger<ConversationGrain> logger) : Grain, IConversationGrain
{
    private readonly SemaphoreSlim _turnLock = new(1, 1);
    private BatchRequest? _last;   // the conversation's last request on this silo's engine (its idle slot)
    private IGrainTimer? _idle;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        if (!ledger.Claim(this.GetGrainId()))
        {
            throw new ConversationCapacityException(
                $"conversation '{this.GetPrimaryKeyString()}': silo {RuntimeIdentity} has all {ledger.Capacity} of its slots taken by live conversations; try again.");
        }

        _idle = this.RegisterGrainTimer(static (grain, _) => grain.OnIdleAsync(), this,
            new GrainTimerCreationOptions(host.Options.IdleTimeout, Timeout.InfiniteTimeSpan) { Interleave = true, KeepAlive = false });
        return Task.CompletedTask;
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (_last is not null)
        {
            host.Engine.ReleaseConversation(_last);
        }

        ledger.Release(this.GetGrainId());
        _idle?.Dispose();
        LogDeactivated(this.GetPrimaryKeyString(), RuntimeIdentity, reason.Description);
        return Task.CompletedTask;
    }

    public async IAsyncEnumerable<ConversationUpdate> ContinueAsync(ConversationTurn turn, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(turn);
        var heartbeat = host.Options.HeartbeatInterval;
        var entered = _turnLock.WaitAsync(cancellationToken);   // turns of one conversation run one after another
        bool holding = false;
        try
        {
            while (!entered.IsCompleted && await Task.WhenAny(entered, Task.Delay(heartbeat, CancellationToken.None)) != entered)
            {
                yield return new ConversationUpdate { Kind = ConversationUpdateKind.Heartbeat };
            }

            await entered;
            holding = true;
            _idle?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            var plan = TurnPlan.For(state.State, turn, host);
            var engine = host.Engine;
            if (_last is not null && !plan.ContinuesTokens(state.State.Tokens))
            {
                engine.ReleaseConversation(_last);   // its own row cannot serve this prompt: free it, not another's
            }

            BatchRequest request;
            try
            {
                request = engine.Submit(plan.Prompt, plan.Options, cancellationToken: cancellationToken, randomState: plan.ResumeFrom);
            }
            catch (ObjectDisposedException e)
            {
                throw ShuttingDown(e);
            }

            _last = request;
            var trimmer = turn.IsText ? null : new ReplyTrimmer();
            var reply = new StringBuilder();
            await using (var tokens = request.ReadTokensAsync(cancellationToken).GetAsyncEnumerator(cancellationToken))
            {
                while (true)
                {
                    var next = tokens.MoveNextAsync().AsTask();
                    while (!next.IsCompleted && await Task.WhenAny(next, Task.Delay(heartbeat, CancellationToken.None)) != next)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        yield return new ConversationUpdate { Kind = ConversationUpdateKind.Heartbeat };
                    }

                    if (!await Guard(next))
                    {
                        break;
                    }

                    var token = tokens.Current;
                    string piece = trimmer is null ? token.Text : trimmer.Push(token.Text);
                    reply.Append(piece);
                    yield return new ConversationUpdate { Kind = ConversationUpdateKind.Token, TokenId = token.TokenId, Text = piece };
                }
            }

            // The reply is complete: only now does the turn become part of the conversation.
            var before = state.State;
            state.State = plan.Commit(request.Result!.Ids, reply.ToString(), request.RandomState);
            try
            {
                await state.WriteStateAsync(cancellationToken);
            }
            catch
            {
                state.State = before;
                throw;
            }

            yield return new ConversationUpdate
            {
                Kind = ConversationUpdateKind.Completed,
                FinishReason = request.FinishReason,
                Usage = new ConversationUsage(plan.Prompt.Length, request.ReusedTokens, request.FedTokens, request.GeneratedTokens),
                Silo = RuntimeIdentity,
                Turn = state.State.Turns,
                Reply = reply.ToString(),
            };
        }
        finally
        {
            if (holding)
            {
                _turnLock.Release();
                _idle?.Change(host.Options.IdleTimeout, Timeout.InfiniteTimeSpan);
            }
            else
            {
                // The caller left while the turn waited: a wait that still succeeds must not keep the lock.
                _ = entered.ContinueWith(static (t, l) => ((SemaphoreSlim)l!).Release(), _turnLock, CancellationToken.None,
                    TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
            }
        }
    }

    public Task<ConversationSnapshot> GetSnapshotAsync()
    {
        var s = state.State;
        return Task.FromResult(new ConversationSnapshot(RuntimeIdentity, s.Turns, [.. s.Messages], [.. s.Tokens], s.RandomState is not null));
    }

    public async Task ClearAsync()
    {
        await _turnLock.WaitAsync();
        try
        {
            await state.ClearStateAsync();
            state.State = new ConversationState();
            this.DeactivateOnIdle();
        }
        finally
        {
            _turnLock.Release();
        }
    }

    /// <summary>The engine's next token; the engine stopping under it (the silo shuts down) is a retryable interruption.</summary>
    private async Task<bool> Guard(Task<bool> next)
    {
        try
        {
            return await next;
        }
        catch (ObjectDisposedException e)
        {
            throw ShuttingDown(e);
        }
    }

    private ConversationInterruptedException ShuttingDown(Exception e) => new(
        $"conversation '{this.GetPrimaryKeyString()}': silo {RuntimeIdentity} is shutting down and its engine stopped mid-turn; nothing of the turn was saved: send it again.", e);

    private Task OnIdleAsync()
    {
        if (_turnLock.CurrentCount == 1)
        {
            LogIdle(this.GetPrimaryKeyString(), host.Options.IdleTimeout.TotalSeconds);
            this.DeactivateOnIdle();
        }

        return Task.CompletedTask;
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "OnnxGpt conversation {Conversation}: idle for {Seconds} s, deactivating.")]
    private partial void LogIdle(string conversation, double seconds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "OnnxGpt conversation {Conversation}: deactivated on {Silo} ({Reason}); its slot is free.")]
    private partial void LogDeactivated(string conversation, string silo, string reason);
}

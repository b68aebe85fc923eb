using System.Diagnostics;
using System.Runtime.CompilerServices;
using OnnxGpt.Orleans.Conversations;
using Orleans.Runtime;
using Orleans.Runtime.Messaging;

namespace OnnxGpt.Orleans.Client;

/// <summary>
/// Runs conversation turns on a cluster (<see cref="IConversationGrain"/>) from a client or a silo, and makes a
/// silo's loss a clear, retryable error:
/// <list type="bullet">
/// <item>a turn whose silo is gone before its first token is sent again (for up to <see cref="ConversationClientOptions.RetryUnstartedFor"/>),
/// which reaches the conversation reactivated on another silo from its saved history;</item>
/// <item>a turn whose reply breaks off (the silo stops answering: no token or heartbeat for
/// <see cref="ConversationClientOptions.StallTimeout"/>, or Orleans reports it unavailable) ends with
/// <see cref="ConversationInterruptedException"/>: nothing of it was saved, and sending it again gives the whole reply.</item>
/// </list>
/// Heartbeats are not passed on: the stream has the tokens and, last, the turn's completion. Thread-safe.
/// </summary>
public sealed class ConversationClient
{
    private const int MaxRetryDelayMilliseconds = 2000;
    private readonly IGrainFactory _grains;

    /// <summary>A client over <paramref name="grains"/> (a cluster client's, or a silo's own).</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public ConversationClient(IGrainFactory grains, ConversationClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(grains);
        options ??= new ConversationClientOptions();
        options.Validate();
        _grains = grains;
        Options = options;
    }

    /// <summary>How losses are told and retried.</summary>
    public ConversationClientOptions Options { get; }

    /// <summary>The grain of conversation <paramref name="conversationId"/>.</summary>
    public IConversationGrain Conversation(string conversationId)
    {
        ArgumentException.ThrowIfNullOrEmpty(conversationId);
        return _grains.GetGrain<IConversationGrain>(conversationId);
    }

    /// <summary>
    /// Runs one turn of conversation <paramref name="conversationId"/>: its tokens as they come, then the
    /// completion (sent once the turn is saved).
    /// </summary>
    /// <exception cref="ConversationInterruptedException">The silo was lost mid-reply, or stayed unreachable before it; send the turn again.</exception>
    /// <exception cref="ConversationCapacityException">Every slot of the cluster is held; try later.</exception>
    /// <exception cref="OnnxGptException">The turn cannot run (bad text, a prompt over the context).</exception>
    public async IAsyncEnumerable<ConversationUpdate> ContinueAsync(string conversationId, ConversationTurn turn,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(turn);
        var grain = Conversation(conversationId);
        var clock = Stopwatch.StartNew();
        var delay = Options.RetryDelay;
        for (int attempt = 1; ; attempt++)
        {
            using var call = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            // One update per message: Orleans otherwise gathers up to 100 into one batch, and a reply would arrive at once at its end.
            var stream = grain.ContinueAsync(turn, call.Token).WithBatchSize(1).GetAsyncEnumerator(call.Token);
            int received = 0;
            Exception? lost = null;
            try
            {
                while (true)
                {
                    var (has, error) = await NextAsync(stream, cancellationToken).ConfigureAwait(false);
                    if (error is not null)
                    {
                        lost = error;
                        break;
                    }

                    if (!has)
                    {
                        lost = new ConversationInterruptedException($"conversation '{conversationId}': the reply ended without the turn's completion.");
                        break;
                    }

                    var update = stream.Current;
                    if (update.Kind == ConversationUpdateKind.Heartbeat)
                    {
                        continue;
                    }

                    received += update.Kind == ConversationUpdateKind.Token ? 1 : 0;
                    yield return update;
                    if (update.Kind == ConversationUpdateKind.Completed)
                    {
                        yield break;
                    }
                }
            }
            finally
            {
                call.Cancel();
                Forget(stream);   // a dead silo would hold an awaited dispose up for the whole response timeout
            }

            if (received == 0 && clock.Elapsed < Options.RetryUnstartedFor)
            {
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                delay = TimeSpan.FromMilliseconds(Math.Min(MaxRetryDelayMilliseconds, 2 * delay.TotalMilliseconds));
                continue;
            }

            throw new ConversationInterruptedException(
                $"conversation '{conversationId}': {(received == 0 ? $"its silo stayed unreachable for {clock.Elapsed.TotalSeconds:F1} s ({attempt} tries)" : $"the reply broke off after {received} tokens")}: " +
                $"{lost.Message} Nothing of this turn was saved; send it again.", lost) { TokensReceived = received };
        }
    }

    /// <summary>Where conversation <paramref name="conversationId"/> lives and what it holds (sent again while its silo is being replaced, as a turn is).</summary>
    public Task<ConversationSnapshot> GetSnapshotAsync(string conversationId, CancellationToken cancellationToken = default) =>
        RetryAsync(() => Conversation(conversationId).GetSnapshotAsync(), conversationId, cancellationToken);

    /// <summary>Forgets conversation <paramref name="conversationId"/>: its saved state and its slot.</summary>
    public Task ClearAsync(string conversationId, CancellationToken cancellationToken = default) =>
        RetryAsync(async () =>
        {
            await Conversation(conversationId).ClearAsync().ConfigureAwait(false);
            return true;
        }, conversationId, cancellationToken);

    /// <summary>Whether <paramref name="error"/> means the conversation's silo (or the way to it) was lost, rather than a refused turn.</summary>
    /// <remarks>
    /// <see cref="EnumerationAbortedException"/> is one: the next part of the stream reached the conversation already
    /// reactivated elsewhere, which never heard of this reply.
    /// </remarks>
    public static bool IsSiloLoss(Exception error) => error is SiloUnavailableException or OrleansMessageRejectionException or TimeoutException
        or ConversationInterruptedException or ConnectionFailedException or EnumerationAbortedException;

    private async Task<T> RetryAsync<T>(Func<Task<T>> call, string conversationId, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var delay = Options.RetryDelay;
        while (true)
        {
            try
            {
                return await call().WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (IsSiloLoss(e) && !cancellationToken.IsCancellationRequested)
            {
                if (clock.Elapsed >= Options.RetryUnstartedFor)
                {
                    throw new ConversationInterruptedException(
                        $"conversation '{conversationId}': its silo stayed unreachable for {clock.Elapsed.TotalSeconds:F1} s: {e.Message}", e);
                }
            }

            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            delay = TimeSpan.FromMilliseconds(Math.Min(MaxRetryDelayMilliseconds, 2 * delay.TotalMilliseconds));
        }
    }

    /// <summary>The next update, or the loss that stopped it (a stall counts); other errors are thrown.</summary>
    private async Task<(bool Has, Exception? Lost)> NextAsync(IAsyncEnumerator<ConversationUpdate> stream, CancellationToken cancellationToken)
    {
        try
        {
            return (await stream.MoveNextAsync().AsTask().WaitAsync(Options.StallTimeout, cancellationToken).ConfigureAwait(false), null);
        }
        catch (TimeoutException e) when (!cancellationToken.IsCancellationRequested)
        {
            return (false, new TimeoutException($"nothing came from its silo for {Options.StallTimeout.TotalSeconds:F1} s (no token, no heartbeat).", e));
        }
        catch (Exception e) when (IsSiloLoss(e) && !cancellationToken.IsCancellationRequested)
        {
            return (false, e);
        }
    }

    private static void Forget(IAsyncEnumerator<ConversationUpdate> stream)
    {
        _ = Task.Run(async () =>
        {
            try
            {
                await stream.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception)
            {
                // The silo is gone or the call was cancelled: nothing is left to clean up on this side.
            }
        });
    }
}

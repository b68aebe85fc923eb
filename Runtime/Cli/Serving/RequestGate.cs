using OnnxGpt.Runtime.Diagnostics;

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// Lets at most <c>parallel</c> requests generate at once; up to <c>queue</c> more wait their turn (first come,
/// first served); beyond that a request is refused at once with 503.
/// </summary>
internal sealed class RequestGate(int parallel, int queue)
{
    private readonly SemaphoreSlim _slots = new(parallel, parallel);
    private int _admitted;

    /// <summary>Requests generating or waiting now.</summary>
    public int Admitted => Volatile.Read(ref _admitted);

    /// <summary>Requests holding a slot (generating) now.</summary>
    public int Generating => parallel - _slots.CurrentCount;

    /// <summary>Requests waiting for a slot now.</summary>
    public int Waiting => Math.Max(0, Admitted - Generating);

    /// <summary>The most requests that generate at once.</summary>
    public int Parallel => parallel;

    /// <summary>The most requests that wait.</summary>
    public int Queue => queue;

    public async Task<IDisposable> EnterAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Increment(ref _admitted) > parallel + queue)
        {
            Interlocked.Decrement(ref _admitted);
            throw new OpenAiError(503, $"the server is busy: {parallel} requests are generating and {queue} waiting; try again later.",
                code: "server_busy", type: OpenAiError.ServerError);
        }

        OnnxGptTelemetry.QueueLength.Add(1);
        try
        {
            await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            Interlocked.Decrement(ref _admitted);
            throw;
        }
        finally
        {
            OnnxGptTelemetry.QueueLength.Add(-1);
        }

        OnnxGptTelemetry.ActiveSequences.Add(1);
        return new Slot(this);
    }

    private sealed class Slot(RequestGate gate) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                OnnxGptTelemetry.ActiveSequences.Add(-1);
                gate._slots.Release();
                Interlocked.Decrement(ref gate._admitted);
            }
        }
    }
}

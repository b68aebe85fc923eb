using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Runtime.Batching;

/// <summary>
/// One request in a <see cref="BatchEngine"/>: its prompt waits for a slot, is fed in chunks between the other
/// sequences' decoding steps, then decodes with them, one token per step, with its own sampler, seed and stop rules.
/// Read its tokens as they come with <see cref="ReadTokensAsync"/>; it leaves its slot when it finishes, when it is
/// cancelled (<see cref="Cancel"/>, the token given to <see cref="BatchEngine.Submit"/> or to the reader), or when its
/// reader stops reading. Thread-safe.
/// </summary>
public sealed class BatchRequest
{
    private readonly Channel<GeneratedToken> _tokens = Channel.CreateUnbounded<GeneratedToken>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = true, AllowSynchronousContinuations = false });
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Action _wake;
    private volatile bool _cancelRequested;
    private volatile int _slot = -1;
    private volatile int _reused;
    private volatile FinishReason _finishReason;
    private long _fed;
    private int _generated;
    private long _runInFlightSince;
    private long _placedAt;
    private long _promptStartedAt;
    private long _promptFedAt;
    private long _firstTokenAt;

    internal BatchRequest(int[] prompt, GenerationOptions options, LogitsProcessor? logitsProcessor, Action wake, ulong[]? resumeRandomState = null)
    {
        Prompt = prompt;
        ResumeRandomState = resumeRandomState;
        Options = options;
        LogitsProcessor = logitsProcessor;
        _wake = wake;
        SubmittedAt = Stopwatch.GetTimestamp();
    }

    /// <summary>How its tokens are picked.</summary>
    public GenerationOptions Options { get; }

    /// <summary>Tokens in its prompt.</summary>
    public int PromptTokens => Prompt.Length;

    /// <summary>Prompt tokens it found in the cache of an earlier conversation and did not feed again (known once it has a slot).</summary>
    public int ReusedTokens => _reused;

    /// <summary>Tokens generated so far.</summary>
    public int GeneratedTokens => Volatile.Read(ref _generated);

    /// <summary>Token positions the model was fed for it: the prompt tokens not reused, and one per decoding step.</summary>
    public long FedTokens => Interlocked.Read(ref _fed);

    /// <summary>Its slot in the engine, or −1 while it waits (and after it left).</summary>
    public int Slot => _slot;

    /// <summary>Why it stopped, or <see cref="FinishReason.None"/> while it runs (and when it was cancelled or failed).</summary>
    public FinishReason FinishReason => _finishReason;

    /// <summary>Completes when it has left the engine: finished, cancelled or failed (then faulted with the error).</summary>
    public Task Completion => _completion.Task;

    /// <summary>
    /// Where its time to first token went, by the engine's clock: submitted, placed, prompt run, first token (each
    /// 0 until reached; complete once its first token has been read).
    /// </summary>
    public BatchRequestTimeline Timeline => new(SubmittedAt, Volatile.Read(ref _runInFlightSince), Volatile.Read(ref _placedAt),
        Volatile.Read(ref _promptStartedAt), Volatile.Read(ref _promptFedAt), Volatile.Read(ref _firstTokenAt));

    /// <summary>Its prompt and generated tokens, text and times once it finished (null before, and when it was cancelled or failed).</summary>
    public GenerationResult? Result { get; private set; }

    /// <summary>
    /// Its sampler's random state when it finished (<see cref="Sampler.GetRandomState"/>; null before, and when it was
    /// cancelled or failed): given to <see cref="BatchEngine.Submit"/> as <c>randomState</c>, the next request samples on
    /// from exactly where this one stopped, on this engine or another.
    /// </summary>
    public IReadOnlyList<ulong>? RandomState { get; private set; }

    internal int[] Prompt { get; }

    internal LogitsProcessor? LogitsProcessor { get; }

    internal long SubmittedAt { get; }

    /// <summary>The random state its sampler starts from instead of its seed's, or null.</summary>
    internal ulong[]? ResumeRandomState { get; }

    /// <summary>The slot it was last placed in (kept after it leaves, so its idle conversation can be released), or −1.</summary>
    internal int LastSlot { get; private set; } = -1;

    internal bool CancelRequested => _cancelRequested;

    /// <summary>Asks the engine to stop it; its slot is free at the next step. Reading then ends with <see cref="OperationCanceledException"/>.</summary>
    public void Cancel()
    {
        if (!_cancelRequested && !_completion.Task.IsCompleted)
        {
            _cancelRequested = true;
            _wake();
        }
    }

    /// <summary>
    /// The tokens as they are generated, each with the text it completes; the last one carries the finish reason.
    /// Cancelling <paramref name="cancellationToken"/>, or leaving the loop early, cancels the request.
    /// </summary>
    /// <exception cref="OperationCanceledException">The request was cancelled.</exception>
    /// <exception cref="OnnxGptException">The model failed on a step of this request.</exception>
    public async IAsyncEnumerable<GeneratedToken> ReadTokensAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var registration = cancellationToken.Register(static r => ((BatchRequest)r!).Cancel(), this);
        bool done = false;
        try
        {
            var reader = _tokens.Reader;
            while (await reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
            {
                while (reader.TryRead(out var token))
                {
                    yield return token;
                }
            }

            await _completion.Task.ConfigureAwait(false);   // rethrows a failure or the cancellation
            done = true;
        }
        finally
        {
            if (!done)
            {
                Cancel();
            }
        }
    }

    internal void Place(int slot, int reused)
    {
        Volatile.Write(ref _placedAt, Stopwatch.GetTimestamp());
        _reused = reused;
        _slot = slot;
        LastSlot = slot;
    }

    /// <summary>The engine's run going on when it was submitted began at <paramref name="timestamp"/> (0: none).</summary>
    internal void MarkRunInFlight(long timestamp) => Volatile.Write(ref _runInFlightSince, timestamp);

    /// <summary>A run that feeds some of its prompt begins at <paramref name="timestamp"/> (the first one counts).</summary>
    internal void MarkPromptRun(long timestamp)
    {
        if (_promptStartedAt == 0)
        {
            Volatile.Write(ref _promptStartedAt, timestamp);
        }
    }

    /// <summary>The run that fed the last of its prompt ended at <paramref name="timestamp"/>.</summary>
    internal void MarkPromptFed(long timestamp)
    {
        if (_promptFedAt == 0)
        {
            Volatile.Write(ref _promptFedAt, timestamp);
        }
    }

    internal void AddFed(int tokens) => Interlocked.Add(ref _fed, tokens);

    internal void Publish(GeneratedToken token)
    {
        if (Interlocked.Increment(ref _generated) == 1)
        {
            Volatile.Write(ref _firstTokenAt, Stopwatch.GetTimestamp());   // before the reader can see the token
        }

        _tokens.Writer.TryWrite(token);
    }

    internal void Finish(GenerationResult result, ulong[] randomState)
    {
        Result = result;
        RandomState = randomState;
        _finishReason = result.FinishReason;
        _slot = -1;
        _tokens.Writer.TryComplete();
        _completion.TrySetResult();
    }

    internal void Fail(Exception error)
    {
        _slot = -1;
        _tokens.Writer.TryComplete(error);
        if (error is OperationCanceledException canceled)
        {
            _completion.TrySetCanceled(canceled.CancellationToken);
        }
        else
        {
            _completion.TrySetException(error);
        }
    }
}

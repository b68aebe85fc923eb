using System.Diagnostics;

namespace OnnxGpt.Runtime.Batching;

/// <summary>
/// Where a <see cref="BatchRequest"/>'s time to first token went, as <see cref="Stopwatch.GetTimestamp"/> values taken
/// by the engine (0: not reached yet). In order: it was submitted (while the engine ran the run that began at
/// <see cref="RunInFlightSince"/>, or while it was idle), took a slot, its first prompt tokens went into a run, the
/// run that fed its last prompt token ended, and its first token was sampled and handed to its reader.
/// </summary>
/// <param name="Submitted">When <see cref="BatchEngine.Submit"/> queued it.</param>
/// <param name="RunInFlightSince">When the engine's run that was going on at <paramref name="Submitted"/> began; 0 when none was (the engine was idle, or between runs).</param>
/// <param name="Placed">When it took a slot (the engine's first step boundary after <paramref name="Submitted"/> with a slot free).</param>
/// <param name="PromptStarted">When the first run that fed some of its prompt began.</param>
/// <param name="PromptFed">When the run that fed the last of its prompt ended (its logits were ready).</param>
/// <param name="FirstToken">When its first token had been sampled and published to its reader.</param>
public readonly record struct BatchRequestTimeline(long Submitted, long RunInFlightSince, long Placed, long PromptStarted, long PromptFed, long FirstToken)
{
    /// <summary>Waiting for a slot: the rest of the run in flight (if any), then the engine's step boundary and, when every slot was busy, the queue.</summary>
    public TimeSpan WaitedForSlot => Between(Submitted, Placed);

    /// <summary>From taking a slot to its first run.</summary>
    public TimeSpan WaitedForRun => Between(Placed, PromptStarted);

    /// <summary>Its prompt's runs (every chunk, and any decoding runs between them).</summary>
    public TimeSpan PromptRuns => Between(PromptStarted, PromptFed);

    /// <summary>Sampling and publishing its first token.</summary>
    public TimeSpan Sampling => Between(PromptFed, FirstToken);

    /// <summary>From <see cref="BatchEngine.Submit"/> to the first token (zero until there is one).</summary>
    public TimeSpan TimeToFirstToken => Between(Submitted, FirstToken);

    /// <summary>How long the run in flight had been going when the request came (zero when none was).</summary>
    public TimeSpan RunInFlightAge => RunInFlightSince == 0 ? TimeSpan.Zero : Between(RunInFlightSince, Submitted);

    /// <summary>The time from <paramref name="from"/> to <paramref name="to"/>; zero unless both were reached.</summary>
    private static TimeSpan Between(long from, long to) => from == 0 || to == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(from, to);
}

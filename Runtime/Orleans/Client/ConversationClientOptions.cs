namespace OnnxGpt.Orleans.Client;

/// <summary>How a <see cref="ConversationClient"/> tells a lost silo from a slow reply, and how long it retries a turn that never started.</summary>
public sealed record ConversationClientOptions
{
    /// <summary>
    /// A turn that sends nothing (no token, no heartbeat) for this long has lost its silo. Keep it a few times the
    /// silos' <see cref="Hosting.ConversationSiloOptions.HeartbeatInterval"/>. Default 5 s.
    /// </summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// A turn that fails before its first token because its silo is gone is sent again for up to this long (the
    /// cluster needs a moment to declare the silo dead and to place the conversation elsewhere); a turn that fails
    /// after tokens arrived is never sent again by the client: the caller decides. Default 60 s.
    /// </summary>
    public TimeSpan RetryUnstartedFor { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>The first wait before such a retry; each next one doubles, up to 2 s. Default 100 ms.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Checks the settings.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A time is not positive (or negative, for the retries); the message names it.</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(StallTimeout, TimeSpan.Zero, nameof(StallTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(RetryUnstartedFor, TimeSpan.Zero, nameof(RetryUnstartedFor));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(RetryDelay, TimeSpan.Zero, nameof(RetryDelay));
    }
}

namespace OnnxGpt.Bench.Load;

/// <summary>What one streaming client saw: its times (seconds from the run's start), its text and its token count.</summary>
/// <param name="Prompt">Which prompt it sent.</param>
/// <param name="Submitted">When the request went out.</param>
/// <param name="FirstToken">When the first piece of text came (NaN if none did).</param>
/// <param name="LastToken">When the last piece came.</param>
/// <param name="Gaps">Seconds between consecutive pieces of text.</param>
/// <param name="Tokens">Tokens generated, from the response's usage.</param>
/// <param name="Text">The generated text.</param>
/// <param name="Timings">When asked for: the server's <c>timings</c> (milliseconds from when it began handling the request to
/// each step of the first token: submitted_ms, run_in_flight_since_ms, placed_ms, prompt_started_ms, prompt_fed_ms,
/// first_token_ms, first_sent_ms); null otherwise.</param>
public sealed record ClientRun(int Prompt, double Submitted, double FirstToken, double LastToken, IReadOnlyList<double> Gaps, int Tokens, string Text,
    IReadOnlyDictionary<string, double>? Timings = null)
{
    public double TimeToFirstToken => FirstToken - Submitted;

    /// <summary>Tokens per second after the first.</summary>
    public double TokensPerSecond => Tokens > 1 && LastToken > FirstToken ? (Tokens - 1) / (LastToken - FirstToken) : double.NaN;
}

namespace OnnxGpt.Runtime.Generation;

/// <summary>When a prompt's beam search is done: Hugging Face's three values of <c>early_stopping</c>.</summary>
public enum BeamEarlyStopping
{
    /// <summary>
    /// Hugging Face's <c>False</c> (the default): once <see cref="GenerationOptions.NumBeams"/> hypotheses are finished,
    /// stop when the best running beam's summed log-probability divided by the current length ^ length penalty cannot
    /// beat the worst finished one (a heuristic: the running beams could still gain from a longer length).
    /// </summary>
    Heuristic,

    /// <summary>Hugging Face's <c>True</c>: stop as soon as <see cref="GenerationOptions.NumBeams"/> hypotheses are finished.</summary>
    Early,

    /// <summary>
    /// Hugging Face's <c>"never"</c>: stop only when no running beam can beat the worst finished hypothesis, with a
    /// positive length penalty judged at the longest length the search may reach (the canonical beam search).
    /// </summary>
    Never,
}

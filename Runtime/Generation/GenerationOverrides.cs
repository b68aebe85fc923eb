namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// What one request, command line or configuration section asks for on top of a model's defaults: every field left
/// null keeps the base value. This is the one place where a request's options meet the defaults (the CLI's
/// <c>generate</c>, the chat client's <c>ChatOptions</c> and the DI options all go through <see cref="ApplyTo"/>), so
/// the rules are the same everywhere:
/// <list type="bullet">
/// <item>a temperature above 0 turns sampling on, 0 turns it off (greedy); no temperature keeps the base's choice;</item>
/// <item><see cref="Greedy"/> true turns sampling off whatever the temperature;</item>
/// <item>stop strings are added to the base's (each once, in order); a seed replaces the base's.</item>
/// </list>
/// </summary>
public sealed record GenerationOverrides
{
    /// <summary>Most tokens to generate, or null for the base's.</summary>
    public int? MaxNewTokens { get; init; }

    /// <summary>Sampling temperature (0 is greedy), or null for the base's temperature and sampling choice.</summary>
    public double? Temperature { get; init; }

    /// <summary>Top-k (0 turns it off), or null for the base's.</summary>
    public int? TopK { get; init; }

    /// <summary>Top-p (1 turns it off), or null for the base's.</summary>
    public double? TopP { get; init; }

    /// <summary>Repetition penalty (1 turns it off), or null for the base's.</summary>
    public double? RepetitionPenalty { get; init; }

    /// <summary>OpenAI's presence penalty (0 turns it off), or null for the base's.</summary>
    public double? PresencePenalty { get; init; }

    /// <summary>OpenAI's frequency penalty (0 turns it off), or null for the base's.</summary>
    public double? FrequencyPenalty { get; init; }

    /// <summary>Token id → bias, or null for the base's.</summary>
    public IReadOnlyDictionary<int, double>? LogitBias { get; init; }

    /// <summary>No-repeat n-gram size (0 turns it off), or null for the base's.</summary>
    public int? NoRepeatNgramSize { get; init; }

    /// <summary>Beams (1: no beam search), or null for the base's.</summary>
    public int? NumBeams { get; init; }

    /// <summary>Beam search's length penalty, or null for the base's.</summary>
    public double? LengthPenalty { get; init; }

    /// <summary>Beam search's early stopping, or null for the base's.</summary>
    public BeamEarlyStopping? EarlyStopping { get; init; }

    /// <summary>Sequences per prompt, or null for the base's.</summary>
    public int? NumReturnSequences { get; init; }

    /// <summary>Alternatives recorded with each token's log-probability (0..20), or null for the base's.</summary>
    public int? TopLogProbs { get; init; }

    /// <summary>The sampler's seed, or null for the base's.</summary>
    public ulong? Seed { get; init; }

    /// <summary>True picks the most likely token every step (sampling off); null or false leaves it to the temperature.</summary>
    public bool? Greedy { get; init; }

    /// <summary>Stop strings added to the base's.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>The base options with these overrides applied (not validated: call <see cref="GenerationOptions.Validate"/>).</summary>
    public GenerationOptions ApplyTo(GenerationOptions baseOptions)
    {
        ArgumentNullException.ThrowIfNull(baseOptions);
        ArgumentNullException.ThrowIfNull(StopStrings);
        bool doSample = Temperature is { } t ? t > 0 : baseOptions.DoSample;
        var stops = baseOptions.StopStrings.Concat(StopStrings).Distinct(StringComparer.Ordinal).ToArray();
        return baseOptions with
        {
            MaxNewTokens = MaxNewTokens ?? baseOptions.MaxNewTokens,
            DoSample = doSample && Greedy != true,
            Temperature = Temperature ?? baseOptions.Temperature,
            TopK = TopK ?? baseOptions.TopK,
            TopP = TopP ?? baseOptions.TopP,
            RepetitionPenalty = RepetitionPenalty ?? baseOptions.RepetitionPenalty,
            Seed = Seed ?? baseOptions.Seed,
            PresencePenalty = PresencePenalty ?? baseOptions.PresencePenalty,
            FrequencyPenalty = FrequencyPenalty ?? baseOptions.FrequencyPenalty,
            LogitBias = LogitBias ?? baseOptions.LogitBias,
            NoRepeatNgramSize = NoRepeatNgramSize ?? baseOptions.NoRepeatNgramSize,
            NumBeams = NumBeams ?? baseOptions.NumBeams,
            LengthPenalty = LengthPenalty ?? baseOptions.LengthPenalty,
            EarlyStopping = EarlyStopping ?? baseOptions.EarlyStopping,
            NumReturnSequences = NumReturnSequences ?? baseOptions.NumReturnSequences,
            TopLogProbs = TopLogProbs ?? baseOptions.TopLogProbs,
            StopStrings = stops.Length == baseOptions.StopStrings.Count ? baseOptions.StopStrings : stops,
        };
    }
}

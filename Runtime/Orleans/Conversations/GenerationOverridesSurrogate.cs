using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Orleans.Conversations;

/// <summary>
/// <see cref="GenerationOverrides"/> on the wire between a client and a silo (the library's type carries no Orleans
/// attributes). Every property of <see cref="GenerationOverrides"/> has a field here; a test checks that a new one
/// cannot be forgotten.
/// </summary>
[GenerateSerializer, Immutable, Alias("onnxgpt.GenerationOverrides")]
internal struct GenerationOverridesSurrogate
{
    [Id(0)] public int? MaxNewTokens;
    [Id(1)] public double? Temperature;
    [Id(2)] public int? TopK;
    [Id(3)] public double? TopP;
    [Id(4)] public double? RepetitionPenalty;
    [Id(5)] public ulong? Seed;
    [Id(6)] public bool? Greedy;
    [Id(7)] public string[] StopStrings;
    [Id(8)] public double? PresencePenalty;
    [Id(9)] public double? FrequencyPenalty;
    [Id(10)] public Dictionary<int, double>? LogitBias;
    [Id(11)] public int? NoRepeatNgramSize;
    [Id(12)] public int? NumBeams;
    [Id(13)] public double? LengthPenalty;
    [Id(14)] public BeamEarlyStopping? EarlyStopping;
    [Id(15)] public int? NumReturnSequences;
    [Id(16)] public int? TopLogProbs;
}

/// <summary>Converts <see cref="GenerationOverrides"/> to and from <see cref="GenerationOverridesSurrogate"/>.</summary>
[RegisterConverter]
internal sealed class GenerationOverridesConverter : IConverter<GenerationOverrides, GenerationOverridesSurrogate>
{
    public GenerationOverrides ConvertFromSurrogate(in GenerationOverridesSurrogate surrogate) => new()
    {
        MaxNewTokens = surrogate.MaxNewTokens,
        Temperature = surrogate.Temperature,
        TopK = surrogate.TopK,
        TopP = surrogate.TopP,
        RepetitionPenalty = surrogate.RepetitionPenalty,
        Seed = surrogate.Seed,
        Greedy = surrogate.Greedy,
        StopStrings = surrogate.StopStrings ?? [],
        PresencePenalty = surrogate.PresencePenalty,
        FrequencyPenalty = surrogate.FrequencyPenalty,
        LogitBias = surrogate.LogitBias,
        NoRepeatNgramSize = surrogate.NoRepeatNgramSize,
        NumBeams = surrogate.NumBeams,
        LengthPenalty = surrogate.LengthPenalty,
        EarlyStopping = surrogate.EarlyStopping,
        NumReturnSequences = surrogate.NumReturnSequences,
        TopLogProbs = surrogate.TopLogProbs,
    };

    public GenerationOverridesSurrogate ConvertToSurrogate(in GenerationOverrides value) => new()
    {
        MaxNewTokens = value.MaxNewTokens,
        Temperature = value.Temperature,
        TopK = value.TopK,
        TopP = value.TopP,
        RepetitionPenalty = value.RepetitionPenalty,
        Seed = value.Seed,
        Greedy = value.Greedy,
        StopStrings = [.. value.StopStrings],
        PresencePenalty = value.PresencePenalty,
        FrequencyPenalty = value.FrequencyPenalty,
        LogitBias = value.LogitBias is null ? null : new Dictionary<int, double>(value.LogitBias),
        NoRepeatNgramSize = value.NoRepeatNgramSize,
        NumBeams = value.NumBeams,
        LengthPenalty = value.LengthPenalty,
        EarlyStopping = value.EarlyStopping,
        NumReturnSequences = value.NumReturnSequences,
        TopLogProbs = value.TopLogProbs,
    };
}

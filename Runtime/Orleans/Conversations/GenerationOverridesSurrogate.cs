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
    };
}

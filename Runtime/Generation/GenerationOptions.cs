using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Constraints;

namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// How to pick tokens. Start from the model's defaults with <see cref="FromDefaults"/> and override with
/// <c>with { ... }</c>; <see cref="Validate"/> checks every limit. Greedy decoding (argmax) happens when
/// <see cref="DoSample"/> is false or <see cref="Temperature"/> is 0; otherwise the order is Hugging Face's:
/// repetition penalty, temperature, top-k, top-p, then a draw from the remaining distribution. OpenAI's additive
/// <see cref="PresencePenalty"/> and <see cref="FrequencyPenalty"/>, <see cref="LogitBias"/> and
/// <see cref="NoRepeatNgramSize"/> apply after the repetition penalty, before greedy or the draw.
/// <para>
/// <see cref="NumBeams"/> above 1 runs beam search instead (Hugging Face's <c>num_beams</c> with <c>do_sample</c>
/// false, as ONNX Runtime's BeamSearch operator and ONNX Runtime GenAI reproduce it): temperature, top-k, top-p and
/// the seed are not used; see <see cref="Generator"/>. <see cref="NumReturnSequences"/> above 1 with sampling gives
/// that many sequences per prompt, the prompt processed once.
/// </para>
/// </summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens to generate after the prompt; 0 generates nothing.</summary>
    public int MaxNewTokens { get; init; } = 64;

    /// <summary>Sample from the distribution; false means greedy (argmax, lowest id on ties).</summary>
    public bool DoSample { get; init; } = true;

    /// <summary>Logits are divided by this before sampling; 0 means greedy.</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>Keep only the k most likely tokens (ties with the k-th are kept, as in Hugging Face); 0 turns it off.</summary>
    public int TopK { get; init; } = 50;

    /// <summary>Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches this (always at least one token); 1 turns it off.</summary>
    public double TopP { get; init; } = 1.0;

    /// <summary>Penalty on tokens seen before (prompt and output): positive logits divided by it, negative multiplied; 1 turns it off.</summary>
    public double RepetitionPenalty { get; init; } = 1.0;

    /// <summary>Seed of the sampler's random generator; null picks one at random (see <see cref="Sampler.Seed"/> to reproduce a run).</summary>
    public ulong? Seed { get; init; }

    /// <summary>Generation stops after producing any of these tokens (typically the model's end-of-sequence id); the token is not part of the text.</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];

    /// <summary>Generation stops when the text contains any of these; the text before it is kept, the stop string itself is not.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>
    /// What the generated text must be (a JSON Schema, a grammar, any JSON value), or null for free text. Every row's
    /// tokens are masked before sampling so that the text can always still complete the constraint; the end-of-text
    /// and stop tokens are allowed only once it is complete, and a row finishes with
    /// <see cref="FinishReason.ConstraintComplete"/> when nothing more can follow. Needs a model with a tokenizer.
    /// </summary>
    public OutputConstraint? Constraint { get; init; }

    /// <summary>
    /// OpenAI's presence penalty, in [−2, 2]: subtracted once from the logit of every token that occurs in the tokens
    /// generated so far (<c>logit[j] −= presence · (count[j] &gt; 0)</c>, counts over the completion, not the prompt,
    /// as OpenAI's API reference defines it and vLLM implements it); 0 turns it off.
    /// </summary>
    public double PresencePenalty { get; init; }

    /// <summary>
    /// OpenAI's frequency penalty, in [−2, 2]: subtracted from a token's logit once per time it occurs in the tokens
    /// generated so far (<c>logit[j] −= frequency · count[j]</c>); 0 turns it off.
    /// </summary>
    public double FrequencyPenalty { get; init; }

    /// <summary>
    /// OpenAI's <c>logit_bias</c>: token id → a bias in [−100, 100] added to that token's logit before sampling (−100
    /// in effect bans a token, 100 makes it all but certain). Ids must be inside the model's vocabulary. Empty: none.
    /// </summary>
    public IReadOnlyDictionary<int, double> LogitBias { get; init; } = NoBias;

    /// <summary>
    /// Hugging Face's <c>no_repeat_ngram_size</c>: a token that would complete an n-gram already present in the
    /// sequence (prompt and generated) is forbidden; 0 turns it off.
    /// </summary>
    public int NoRepeatNgramSize { get; init; }

    /// <summary>Beams for beam search; 1 (the default) samples or picks greedily instead.</summary>
    public int NumBeams { get; init; } = 1;

    /// <summary>
    /// Beam search: a finished hypothesis scores its summed log-probabilities divided by <c>length ^ LengthPenalty</c>,
    /// where length counts what <see cref="BeamLength"/> says (by default the prompt and the generated tokens, not
    /// the end token, as in Hugging Face's BeamHypotheses that ONNX Runtime reproduces). Above 0 favours longer
    /// sequences, below 0 shorter ones.
    /// </summary>
    public double LengthPenalty { get; init; } = 1.0;

    /// <summary>Beam search: what the length under <see cref="LengthPenalty"/> counts (the prompt too, by default).</summary>
    public BeamLength BeamLength { get; init; } = BeamLength.WithPrompt;

    /// <summary>Beam search: when a prompt's search is done (Hugging Face's <c>early_stopping</c>).</summary>
    public BeamEarlyStopping EarlyStopping { get; init; } = BeamEarlyStopping.Heuristic;

    /// <summary>
    /// Sequences returned per prompt: with beam search the best of the finished hypotheses (at most
    /// <see cref="NumBeams"/>); with sampling, independent samples of the same prompt (row j seeded
    /// <see cref="Seed"/> + j, the prompt processed once and its cache copied into each row).
    /// </summary>
    public int NumReturnSequences { get; init; } = 1;

    /// <summary>
    /// Record the log-probability of every generated token (<see cref="GeneratedToken.LogProbs"/>,
    /// <see cref="GenerationResult.LogProbs"/>) with this many most likely alternatives, 0 to 20; null (the default)
    /// records nothing and costs nothing.
    /// </summary>
    public int? TopLogProbs { get; init; }

    /// <summary>The most alternatives <see cref="TopLogProbs"/> may ask for (OpenAI's limit).</summary>
    public const int MaxTopLogProbs = 20;

    /// <summary>
    /// Speculative decoding: a draft model or prompt lookup proposes tokens the model verifies several at a time (same
    /// output); null: off. A request with beams, several sequences or log-probabilities decodes plainly instead.
    /// </summary>
    public SpeculativeDecoding? Speculation { get; init; }

    /// <summary>
    /// True when <see cref="Speculation"/> applies: a draft is set, and the request asks for one sequence without beams
    /// or log-probabilities (those are recorded by the plain loop, token by token).
    /// </summary>
    internal bool Speculates => Speculation is { IsEnabled: true } && NumBeams == 1 && NumReturnSequences == 1 && TopLogProbs is null;

    /// <summary>True when beam search runs (<see cref="NumBeams"/> above 1).</summary>
    public bool IsBeamSearch => NumBeams > 1;

    private static readonly IReadOnlyDictionary<int, double> NoBias = new Dictionary<int, double>();


    /// <summary>True when tokens are picked by argmax: <see cref="DoSample"/> is false or <see cref="Temperature"/> is 0.</summary>
    public bool IsGreedy => !DoSample || Temperature == 0;

    /// <summary>Options from a model's <see cref="GenerationDefaults"/> (metadata); override fields with <c>with { ... }</c>.</summary>
    public static GenerationOptions FromDefaults(GenerationDefaults defaults)
    {
        ArgumentNullException.ThrowIfNull(defaults);
        return new GenerationOptions
        {
            MaxNewTokens = defaults.MaxNewTokens,
            DoSample = defaults.DoSample,
            Temperature = defaults.Temperature,
            TopK = defaults.TopK,
            TopP = defaults.TopP,
            RepetitionPenalty = defaults.RepetitionPenalty,
        };
    }

    /// <summary>Checks every option against its limit.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is outside its range; the message names the option, the limit and the value.</exception>
    /// <exception cref="ArgumentException">A stop list is null, or a stop string is empty.</exception>
    public void Validate()
    {
        if (MaxNewTokens < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxNewTokens), MaxNewTokens, $"{nameof(MaxNewTokens)} must be >= 0; found {MaxNewTokens}.");
        }

        if (!(Temperature >= 0) || double.IsPositiveInfinity(Temperature))
        {
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, $"{nameof(Temperature)} must be a finite number >= 0 (0 means greedy); found {Temperature}.");
        }

        if (TopK < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(TopK), TopK, $"{nameof(TopK)} must be >= 0 (0 turns top-k off); found {TopK}.");
        }

        if (!(TopP > 0 && TopP <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(TopP), TopP, $"{nameof(TopP)} must be in (0, 1] (1 turns top-p off); found {TopP}.");
        }

        if (!(RepetitionPenalty > 0) || double.IsPositiveInfinity(RepetitionPenalty))
        {
            throw new ArgumentOutOfRangeException(nameof(RepetitionPenalty), RepetitionPenalty, $"{nameof(RepetitionPenalty)} must be a finite number > 0 (1 turns it off); found {RepetitionPenalty}.");
        }

        CheckOpenAiPenalty(nameof(PresencePenalty), PresencePenalty);
        CheckOpenAiPenalty(nameof(FrequencyPenalty), FrequencyPenalty);
        if (LogitBias is null)
        {
            throw new ArgumentException($"{nameof(LogitBias)} must not be null; use an empty map.", nameof(LogitBias));
        }

        foreach (var (token, bias) in LogitBias)
        {
            if (token < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(LogitBias), token, $"{nameof(LogitBias)}: token id {token} must be >= 0.");
            }

            if (!(bias >= -100 && bias <= 100))
            {
                throw new ArgumentOutOfRangeException(nameof(LogitBias), bias, $"{nameof(LogitBias)}[{token}] must be in [-100, 100]; found {bias}.");
            }
        }

        if (NoRepeatNgramSize < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(NoRepeatNgramSize), NoRepeatNgramSize, $"{nameof(NoRepeatNgramSize)} must be >= 0 (0 turns it off); found {NoRepeatNgramSize}.");
        }

        if (NumBeams < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(NumBeams), NumBeams, $"{nameof(NumBeams)} must be >= 1 (1: no beam search); found {NumBeams}.");
        }

        if (!double.IsFinite(LengthPenalty))
        {
            throw new ArgumentOutOfRangeException(nameof(LengthPenalty), LengthPenalty, $"{nameof(LengthPenalty)} must be a finite number; found {LengthPenalty}.");
        }

        if (!Enum.IsDefined(EarlyStopping))
        {
            throw new ArgumentOutOfRangeException(nameof(EarlyStopping), EarlyStopping, $"{nameof(EarlyStopping)} must be Heuristic, Early or Never; found {(int)EarlyStopping}.");
        }

        if (!Enum.IsDefined(BeamLength))
        {
            throw new ArgumentOutOfRangeException(nameof(BeamLength), BeamLength, $"{nameof(BeamLength)} must be WithPrompt or Generated; found {(int)BeamLength}.");
        }

        if (NumReturnSequences < 1 || (IsBeamSearch && NumReturnSequences > NumBeams))
        {
            throw new ArgumentOutOfRangeException(nameof(NumReturnSequences), NumReturnSequences, IsBeamSearch
                ? $"{nameof(NumReturnSequences)} must be between 1 and {nameof(NumBeams)} ({NumBeams}) with beam search; found {NumReturnSequences}."
                : $"{nameof(NumReturnSequences)} must be >= 1; found {NumReturnSequences}.");
        }

        if (TopLogProbs is < 0 or > MaxTopLogProbs)
        {
            throw new ArgumentOutOfRangeException(nameof(TopLogProbs), TopLogProbs, $"{nameof(TopLogProbs)} must be between 0 and {MaxTopLogProbs} (or null: no log-probabilities); found {TopLogProbs}.");
        }

        if (StopTokenIds is null)
        {
            throw new ArgumentException($"{nameof(StopTokenIds)} must not be null; use an empty list.", nameof(StopTokenIds));
        }

        for (var i = 0; i < StopTokenIds.Count; i++)
        {
            if (StopTokenIds[i] < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(StopTokenIds), StopTokenIds[i], $"{nameof(StopTokenIds)}[{i}] must be a token id >= 0; found {StopTokenIds[i]}.");
            }
        }

        Speculation?.Validate();

        if (StopStrings is null)
        {
            throw new ArgumentException($"{nameof(StopStrings)} must not be null; use an empty list.", nameof(StopStrings));
        }

        for (var i = 0; i < StopStrings.Count; i++)
        {
            if (string.IsNullOrEmpty(StopStrings[i]))
            {
                throw new ArgumentException($"{nameof(StopStrings)}[{i}] is empty; a stop string needs at least one character.", nameof(StopStrings));
            }
        }
    }

    private static void CheckOpenAiPenalty(string name, double value)
    {
        if (!(value >= -2 && value <= 2))
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be in [-2, 2] (OpenAI's range; 0 turns it off); found {value}.");
        }
    }
}

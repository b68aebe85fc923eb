using System.CommandLine;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Providers;

namespace OnnxGpt.Cli.Options;

/// <summary>
/// Speculative decoding's options, shared by <c>generate</c>, <c>serve</c> and <c>bench speculative</c>:
/// <c>--draft DIR</c> (a draft model sharing the tokenizer, e.g. the int4 export of the same weights),
/// <c>--prompt-lookup N</c> (n-grams of up to N tokens matched against the sequence) and <c>--draft-tokens K</c>
/// (a fixed k; adaptive by default). A command creates one group, adds it with <see cref="AddTo"/> and reads it with
/// <see cref="Load"/>, which loads the draft model.
/// </summary>
internal sealed class SpeculationOptionGroup
{
    /// <summary><c>--draft DIR</c>.</summary>
    public Option<string?> Draft { get; } = CliOption.Text("--draft", "DIR",
        "speculative decoding with this draft model (same tokenizer; e.g. the int4 export of the same weights): it proposes tokens, the model verifies several per step, the output stays the model's",
        "none");

    /// <summary><c>--prompt-lookup N</c>.</summary>
    public Option<int> PromptLookup { get; } = CliOption.Int("--prompt-lookup", "N",
        "speculative decoding by prompt lookup: propose what followed the latest earlier occurrence of the last N (down to 1) tokens; 0 is off",
        0, min: 0, max: 64);

    /// <summary><c>--draft-tokens K</c>.</summary>
    public Option<int> DraftTokens { get; } = CliOption.Int("--draft-tokens", "K",
        $"draft tokens per verifying step; 0 adapts k to the measured acceptance rate and costs (up to {new SpeculativeDecoding().MaxDraftTokens})",
        0, min: 0, max: SpeculativeDecoding.MostDraftTokens);

    /// <summary>Adds the group's options to <paramref name="command"/>, and the rule that <c>--draft-tokens</c> needs a draft.</summary>
    public void AddTo(Command command)
    {
        command.Options.Add(Draft);
        command.Options.Add(PromptLookup);
        command.Options.Add(DraftTokens);
        command.Validators.Add(r =>
        {
            if (r.Given(DraftTokens) && !r.Given(Draft) && r.ValueIfValid(PromptLookup) == 0)
            {
                r.AddError("--draft-tokens needs --draft or --prompt-lookup.");
            }
        });
    }

    /// <summary>
    /// The session settings for a model that runs in turns with a draft model, and for the draft: intra-op threads that
    /// sleep instead of spinning between runs, so that one session's idle threads do not take the cores the other is
    /// running on (measured on GPT-2 124M with its int4 draft, 2 threads: speculative decoding 0.89× plain with both
    /// spinning, 1.46× with the draft's threads asleep, 1.68× with both).
    /// </summary>
    public static SessionSettings ForDraft(SessionSettings settings) => settings with { AllowSpinning = false };

    /// <summary>Whether the options ask for a draft model (whose sessions run in turns with the model's).</summary>
    public bool HasDraft(ParseResult parse) => parse.GetValue(Draft) is not null;

    /// <summary>Whether the options ask for speculative decoding.</summary>
    public bool IsGiven(ParseResult parse) => parse.GetValue(Draft) is not null || parse.GetValue(PromptLookup) > 0;

    /// <summary>
    /// The speculation the options ask for, loading the draft model with <paramref name="settings"/> (the model's own);
    /// null when none. The caller disposes the draft model after the model's generators.
    /// </summary>
    public SpeculativeDecoding? Load(ParseResult parse, SessionSettings settings, TextWriter stderr)
    {
        if (!IsGiven(parse))
        {
            return null;
        }

        var draft = parse.GetValue(Draft) is { } path ? SessionOptionGroup.Load(path, ForDraft(settings), stderr) : null;
        return new SpeculativeDecoding
        {
            DraftModel = draft,
            PromptLookup = parse.GetValue(PromptLookup),
            DraftTokens = parse.GetValue(DraftTokens),
        };
    }
}

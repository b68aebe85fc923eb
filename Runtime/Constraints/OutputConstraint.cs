using System.Runtime.CompilerServices;
using System.Text.Json;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Runtime.Constraints;

/// <summary>
/// What the generated text must be: a sentence of a <see cref="Constraints.Grammar"/>, given as a JSON Schema, a
/// grammar in the GBNF format, or "any JSON value". Set it as <c>GenerationOptions.Constraint</c>: before each token
/// is sampled, every token whose bytes would leave the text unable to complete the grammar is masked out, the
/// end-of-text token is allowed only once the text is complete, and generation ends when nothing can follow.
/// <para>
/// Immutable and thread-safe; build it once and share it. It compiles itself for each tokenizer it meets (the
/// byte-level rules, the token trie) and keeps, per tokenizer, the states and token masks its sequences have met, so
/// a request that repeats an earlier one's path costs an array read per byte and a bit mask per token.
/// </para>
/// </summary>
public sealed class OutputConstraint
{
    private static readonly Lazy<OutputConstraint> AnyJsonValue = new(() => new OutputConstraint(Grammar.AnyJson, "any JSON value"));

    private readonly ConditionalWeakTable<ITextTokenizer, ByteAutomaton> _compiled = new();

    private OutputConstraint(Grammar grammar, string description)
    {
        Grammar = grammar;
        Description = description;
    }

    /// <summary>Any JSON value (OpenAI's <c>json_object</c> response format, M.E.AI's <c>ChatResponseFormat.Json</c>).</summary>
    public static OutputConstraint AnyJson => AnyJsonValue.Value;

    /// <summary>The grammar the text must match.</summary>
    public Grammar Grammar { get; }

    /// <summary>What the constraint is, in a few words ("JSON schema", "grammar file.gbnf", "any JSON value").</summary>
    public string Description { get; }

    /// <summary>The JSON texts a JSON Schema accepts (see <see cref="Grammar.FromJsonSchema(string)"/> for the subset).</summary>
    /// <exception cref="OnnxGptException">The schema is invalid or outside the subset; the message names the keyword and its path.</exception>
    public static OutputConstraint FromJsonSchema(string schema) => new(Grammar.FromJsonSchema(schema), "JSON schema");

    /// <summary>The JSON texts a JSON Schema accepts, from a parsed element.</summary>
    /// <exception cref="OnnxGptException">The schema is outside the subset.</exception>
    public static OutputConstraint FromJsonSchema(JsonElement schema) => new(Grammar.FromJsonSchema(schema), "JSON schema");

    /// <summary>The sentences of a grammar in the GBNF format (see <see cref="Grammar.Parse"/>).</summary>
    /// <exception cref="OnnxGptException">The grammar does not parse or check; the message gives the line and column.</exception>
    public static OutputConstraint FromGrammar(string grammar, string source = "grammar") => new(Grammar.Parse(grammar, source), source);

    /// <summary>The sentences of <paramref name="grammar"/>.</summary>
    public static OutputConstraint FromGrammar(Grammar grammar)
    {
        ArgumentNullException.ThrowIfNull(grammar);
        return new OutputConstraint(grammar, grammar.Source);
    }

    /// <summary>
    /// A new sequence's state: nothing generated yet. <paramref name="endTokens"/> (the model's end-of-text id and any
    /// stop token ids) are allowed only when the text is complete, and end it.
    /// </summary>
    /// <exception cref="OnnxGptException">No text the grammar accepts can be written with this tokenizer's vocabulary
    /// (the message names characters it lacks).</exception>
    public ConstraintState Start(ITextTokenizer tokenizer, IEnumerable<int>? endTokens = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return new ConstraintState(this, Compile(tokenizer), endTokens is null ? [] : [.. endTokens.Distinct()]);
    }

    /// <summary>States this constraint has met on <paramref name="tokenizer"/>'s vocabulary so far, each kept with its transitions and token mask (0 before the first sequence); for diagnostics.</summary>
    public int KnownStates(ITextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return _compiled.TryGetValue(tokenizer, out var automaton) ? automaton.StateCount : 0;
    }

    /// <summary>The grammar compiled for <paramref name="tokenizer"/> (once per tokenizer).</summary>
    internal ByteAutomaton Compile(ITextTokenizer tokenizer) =>
        _compiled.GetValue(tokenizer, t => new ByteAutomaton(Grammar, TokenVocabulary.For(t)));

    /// <inheritdoc/>
    public override string ToString() => Description;
}

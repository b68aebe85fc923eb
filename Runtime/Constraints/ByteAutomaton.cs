namespace OnnxGpt.Runtime.Constraints;

/// <summary>
/// A grammar compiled for one vocabulary: the flat byte-level rules (<see cref="GrammarLowering"/>), the
/// vocabulary's token trie, and the tables of states met so far (<see cref="AutomatonTables"/>), shared by every
/// sequence that runs this grammar on this tokenizer. Thread-safe. When the tables grow past
/// <see cref="MaxStates"/> states, new sequences start on fresh tables, so a long-running server does not keep every
/// state it ever met; sequences already running keep theirs until they end.
/// </summary>
internal sealed class ByteAutomaton
{
    /// <summary>States kept in one set of tables before new sequences start on fresh ones (each keeps a mask of one bit per token: 6 KiB for GPT-2).</summary>
    public const int MaxStates = 8192;

    private readonly object _lock = new();
    private AutomatonTables _tables;

    public ByteAutomaton(Grammar grammar, TokenVocabulary vocabulary)
    {
        Source = grammar.Source;
        Vocabulary = vocabulary;
        Lowering = GrammarLowering.Lower(grammar, vocabulary.Producible, $"{vocabulary.TokenCount} {vocabulary.Kind} tokens");
        Rules = Lowering.RuleAlternatives;
        Root = Lowering.Root;
        _tables = new AutomatonTables(this);
    }

    public string Source { get; }

    public TokenVocabulary Vocabulary { get; }

    public GrammarLowering Lowering { get; }

    public int[][] Rules { get; }

    public int Root { get; }

    /// <summary>The start state, on the current tables.</summary>
    public AutomatonState Start()
    {
        lock (_lock)
        {
            if (_tables.StateCount > MaxStates)
            {
                _tables = new AutomatonTables(this);
            }

            return _tables.Start;
        }
    }

    /// <summary>States in the current tables (for tests and diagnostics).</summary>
    public int StateCount => _tables.StateCount;
}

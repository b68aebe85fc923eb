using System.Text;
using System.Text.Json;

namespace OnnxGpt.Runtime.Constraints;

/// <summary>
/// A context-free grammar over Unicode text, in the grammar format llama.cpp calls GBNF (see
/// <see cref="Parse"/> for the subset): named rules, literals, character classes, grouping, alternation and
/// repetition, starting from the rule <c>root</c>. JSON Schemas compile into one (<see cref="FromJsonSchema(string)"/>),
/// and <see cref="ToString"/> writes it back in the same format. Immutable; a grammar is checked for undefined rules
/// and left recursion when it is built.
/// </summary>
public sealed class Grammar
{
    /// <summary>The name of the rule generation starts from.</summary>
    public const string RootRule = "root";

    /// <summary>Most elements (characters, rule references) a grammar may expand to, repetitions included.</summary>
    public const int MaxSize = 1 << 20;

    private readonly Dictionary<string, GrammarNode> _rules;

    internal Grammar(IReadOnlyList<KeyValuePair<string, GrammarNode>> rules, string source)
    {
        Source = source;
        _rules = new Dictionary<string, GrammarNode>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var (name, node) in rules)
        {
            if (!_rules.TryAdd(name, node))
            {
                throw new OnnxGptException($"{source}: rule '{name}' is defined twice; expected one definition per rule.");
            }

            order.Add(name);
        }

        RuleNames = order;
        GrammarChecks.Check(this);
    }

    /// <summary>Where the grammar came from (a file name, "JSON schema", ...), for messages.</summary>
    public string Source { get; }

    /// <summary>The rules, in the order they were defined.</summary>
    public IReadOnlyList<string> RuleNames { get; }

    /// <summary>"Any JSON value": what OpenAI's <c>json_object</c> response format asks for (an object, array, string, number, true, false or null).</summary>
    public static Grammar AnyJson { get; } = JsonSchemaCompiler.CompileAnyJson();

    internal IReadOnlyDictionary<string, GrammarNode> Rules => _rules;

    /// <summary>
    /// Reads a grammar in the GBNF format: <c>name ::= expression</c> rules (a rule may span lines; the next
    /// <c>name ::=</c> starts the next one), <c>#</c> comments. Expressions: <c>"literal"</c>, <c>[a-z_]</c> and
    /// <c>[^"\\]</c> classes, <c>.</c> (any character), rule names, <c>( ... )</c>, <c>a | b</c>, and the
    /// repetitions <c>*</c> <c>+</c> <c>?</c> <c>{m}</c> <c>{m,}</c> <c>{m,n}</c>. Escapes in literals and classes:
    /// <c>\n \r \t \\ \" \[ \] \- \^ \xHH \uHHHH \UHHHHHHHH</c>. Generation starts at <c>root</c>.
    /// </summary>
    /// <param name="text">The grammar.</param>
    /// <param name="source">Where it came from, for messages (a file name).</param>
    /// <exception cref="OnnxGptException">A syntax error (with line and column), an undefined or duplicate rule, no
    /// <c>root</c>, left recursion, or a grammar larger than <see cref="MaxSize"/>.</exception>
    public static Grammar Parse(string text, string source = "grammar")
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(source);
        return new Grammar(GbnfParser.Parse(text, source), source);
    }

    /// <summary>
    /// Compiles a JSON Schema to the grammar of the JSON texts it accepts. The subset: <c>type</c> (a name or a list
    /// of object, array, string, number, integer, boolean, null), <c>properties</c>, <c>required</c>,
    /// <c>additionalProperties</c> (false, true or a schema), <c>items</c>, <c>prefixItems</c>, <c>enum</c>,
    /// <c>const</c>, <c>minItems</c>/<c>maxItems</c>, <c>minLength</c>/<c>maxLength</c>, <c>pattern</c> (see
    /// <c>docs/structured-output.md</c> for the regular-expression subset), <c>anyOf</c>/<c>oneOf</c> (as anyOf),
    /// <c>allOf</c> of one schema, <c>$ref</c> to <c>#</c>, <c>#/$defs/...</c> and <c>#/definitions/...</c>, and the
    /// annotations (<c>title</c>, <c>description</c>, <c>$schema</c>, <c>default</c>, ...), which constrain nothing.
    /// Any other keyword is refused, naming it and its path.
    /// </summary>
    /// <exception cref="OnnxGptException">The schema is not valid JSON, or uses a keyword or value outside the subset;
    /// the message names the keyword and its JSON path (<c>$.properties.age.minimum</c>).</exception>
    public static Grammar FromJsonSchema(string schema)
    {
        ArgumentNullException.ThrowIfNull(schema);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(schema);
        }
        catch (JsonException e)
        {
            throw new OnnxGptException($"JSON schema: not valid JSON ({e.Message}); expected a JSON Schema object.", e);
        }

        using (document)
        {
            return FromJsonSchema(document.RootElement);
        }
    }

    /// <summary>Compiles a JSON Schema given as a parsed element (see <see cref="FromJsonSchema(string)"/>).</summary>
    /// <exception cref="OnnxGptException">The schema uses a keyword or value outside the subset.</exception>
    public static Grammar FromJsonSchema(JsonElement schema) => new JsonSchemaCompiler(schema).Compile();

    /// <summary>The grammar in the GBNF format, one rule per line; <see cref="Parse"/> reads it back to the same grammar.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        foreach (var name in RuleNames)
        {
            text.Append(name).Append(" ::= ");
            _rules[name].Write(text, asItem: false);
            text.Append('\n');
        }

        return text.ToString();
    }
}

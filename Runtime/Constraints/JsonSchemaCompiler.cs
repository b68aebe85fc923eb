using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using static OnnxGpt.Runtime.Constraints.JsonGrammarParts;

namespace OnnxGpt.Runtime.Constraints;

/// <summary>
/// Compiles a JSON Schema (the subset <see cref="Grammar.FromJsonSchema(string)"/> lists) to a grammar of the JSON
/// texts it accepts. Each object and array schema gets a rule named after its JSON path; references become rule
/// references, so recursive schemas work. Objects are written with their properties in the schema's order (required
/// ones always, optional ones or not), and without properties the schema does not name; an object schema that names
/// no properties takes any members (of the <c>additionalProperties</c> schema, when it gives one). A keyword outside the subset is
/// an error naming it and its path; annotations are ignored.
/// </summary>
internal sealed class JsonSchemaCompiler
{
    private const string Source = "JSON schema";

    private static readonly HashSet<string> Annotations = new(StringComparer.Ordinal)
    {
        "title", "description", "$schema", "$id", "$comment", "default", "examples", "deprecated", "readOnly", "writeOnly",
        "$anchor", "$defs", "definitions", "strict",
    };

    // Dates as RFC 3339 writes them: years 1000-9999, every month's real days (no 29 February: leap years would need
    // the year's arithmetic in the grammar), times with seconds and an offset.
    private const string DatePattern = @"[1-9]\d{3}-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)|02-(0[1-9]|1\d|2[0-8]))";
    private const string TimePattern = @"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,7})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)";

    private static readonly Dictionary<string, string> Formats = new(StringComparer.Ordinal)
    {
        ["date"] = $"^{DatePattern}$",
        ["time"] = $"^{TimePattern}$",
        ["date-time"] = $"^{DatePattern}T{TimePattern}$",
        ["uuid"] = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    };

    private static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly JsonElement _root;
    private readonly List<KeyValuePair<string, GrammarNode>> _rules = [];
    private readonly Dictionary<string, string> _refRules = new(StringComparer.Ordinal);
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    public JsonSchemaCompiler(JsonElement root) => _root = root;

    public static Grammar CompileAnyJson()
    {
        var rules = new List<KeyValuePair<string, GrammarNode>> { new(Grammar.RootRule, Seq(Ref(WsRule), Ref(ValueRule))) };
        rules.AddRange(Rules());
        return new Grammar(rules, "any JSON value");
    }

    public Grammar Compile()
    {
        foreach (var (name, _) in Rules())
        {
            _names.Add(name);
        }

        _names.Add(Grammar.RootRule);
        _refRules["#"] = Grammar.RootRule;
        var rootRule = new KeyValuePair<string, GrammarNode>(Grammar.RootRule, Lit(""));
        _rules.Add(rootRule);
        _rules[0] = new(Grammar.RootRule, Seq(Ref(WsRule), Schema(_root, "$")));
        _rules.AddRange(Rules());
        return new Grammar(_rules, Source);
    }

    private GrammarNode Schema(JsonElement schema, string path)
    {
        if (schema.ValueKind == JsonValueKind.True)
        {
            return Ref(ValueRule);
        }

        if (schema.ValueKind == JsonValueKind.False)
        {
            throw Fail(path, "the schema is false, which no value satisfies");
        }

        if (schema.ValueKind != JsonValueKind.Object)
        {
            throw Fail(path, $"a schema must be an object or a boolean; found {Kind(schema)}");
        }

        var keywords = new HashSet<string>(StringComparer.Ordinal);
        foreach (var property in schema.EnumerateObject())
        {
            if (!Annotations.Contains(property.Name))
            {
                keywords.Add(property.Name);
            }
        }

        if (schema.TryGetProperty("$ref", out var reference))
        {
            Only(keywords, path, "$ref");
            return Ref(RefRule(reference, path + ".$ref"));
        }

        if (schema.TryGetProperty("const", out var constant))
        {
            Only(keywords, path, "const", "type");
            return Lit(Canonical(constant));
        }

        if (schema.TryGetProperty("enum", out var values))
        {
            Only(keywords, path, "enum", "type");
            if (values.ValueKind != JsonValueKind.Array || values.GetArrayLength() == 0)
            {
                throw Fail(path + ".enum", "enum must be a non-empty array of values");
            }

            return Choice([.. values.EnumerateArray().Select(v => Lit(Canonical(v))).Distinct()]);
        }

        if (schema.TryGetProperty("anyOf", out var anyOf))
        {
            Only(keywords, path, "anyOf");
            return Choice([.. Subschemas(anyOf, path + ".anyOf").Select(s => Schema(s.Schema, s.Path))]);
        }

        if (schema.TryGetProperty("allOf", out var allOf))
        {
            Only(keywords, path, "allOf");
            var parts = Subschemas(allOf, path + ".allOf");
            if (parts.Count != 1)
            {
                throw Fail(path + ".allOf", "allOf is supported with one schema only (intersecting schemas is not)");
            }

            return Schema(parts[0].Schema, parts[0].Path);
        }

        var types = Types(schema, path);
        keywords.Remove("type");
        var alternatives = new List<GrammarNode>();
        foreach (var type in types)
        {
            alternatives.Add(type switch
            {
                "object" => ObjectSchema(schema, path, keywords, types.Count),
                "array" => ArraySchema(schema, path, keywords, types.Count),
                "string" => StringSchema(schema, path, keywords, types.Count),
                "integer" => IntegerSchema(schema, path, keywords),
                "number" => Ref(NumberRule),
                "boolean" => Ref(BooleanRule),
                "null" => Ref(NullRule),
                _ => throw new InvalidOperationException(type),
            });
        }

        foreach (var keyword in keywords)
        {
            if (KeywordOwner(keyword) == "integer" && types.Contains("number"))
            {
                throw Fail(path + "." + keyword, $"the keyword '{keyword}' is supported on integers only (type integer), not on other numbers");
            }

            throw Fail(path + "." + keyword, KeywordOwner(keyword) is { } owner && !types.Contains(owner)
                ? $"the keyword '{keyword}' applies to {owner} values, but the schema's type is {string.Join(" or ", types)}"
                : $"the keyword '{keyword}' is not supported (see docs/structured-output.md for the subset)");
        }

        return Choice([.. alternatives]);
    }

    private List<string> Types(JsonElement schema, string path)
    {
        string[] all = ["object", "array", "string", "number", "boolean", "null"];
        if (!schema.TryGetProperty("type", out var type))
        {
            // No type: anything the other keywords allow (an object's keywords make it an object, and so on).
            var implied = all.Where(t => schema.EnumerateObject().Any(p => KeywordOwner(p.Name) == t)).ToList();
            return implied.Count > 0 ? implied : [.. all];
        }

        var names = type.ValueKind switch
        {
            JsonValueKind.String => [type.GetString()!],
            JsonValueKind.Array when type.EnumerateArray().All(t => t.ValueKind == JsonValueKind.String) && type.GetArrayLength() > 0 =>
                type.EnumerateArray().Select(t => t.GetString()!).Distinct().ToList(),
            _ => throw Fail(path + ".type", $"type must be a type name or a non-empty array of them; found {Kind(type)}"),
        };
        foreach (var name in names)
        {
            if (!all.Contains(name) && name != "integer")
            {
                throw Fail(path + ".type", $"unknown type '{name}'; expected object, array, string, number, integer, boolean or null");
            }
        }

        if (names.Contains("number"))
        {
            names.Remove("integer");   // every integer is a number
        }

        return names;
    }

    private static string? KeywordOwner(string keyword) => keyword switch
    {
        "properties" or "required" or "additionalProperties" => "object",
        "items" or "minItems" or "maxItems" => "array",
        "minLength" or "maxLength" or "pattern" or "format" => "string",
        "minimum" or "maximum" or "exclusiveMinimum" or "exclusiveMaximum" => "integer",
        _ => null,
    };

    private GrammarNode ObjectSchema(JsonElement schema, string path, HashSet<string> keywords, int typeCount)
    {
        keywords.Remove("properties");
        keywords.Remove("required");
        keywords.Remove("additionalProperties");
        var required = new HashSet<string>(StringComparer.Ordinal);
        if (schema.TryGetProperty("required", out var requiredList))
        {
            if (requiredList.ValueKind != JsonValueKind.Array || requiredList.EnumerateArray().Any(r => r.ValueKind != JsonValueKind.String))
            {
                throw Fail(path + ".required", "required must be an array of property names");
            }

            required.UnionWith(requiredList.EnumerateArray().Select(r => r.GetString()!));
        }

        var properties = new List<(string Name, JsonElement Schema)>();
        if (schema.TryGetProperty("properties", out var props))
        {
            if (props.ValueKind != JsonValueKind.Object)
            {
                throw Fail(path + ".properties", $"properties must be an object; found {Kind(props)}");
            }

            properties.AddRange(props.EnumerateObject().Select(p => (p.Name, p.Value)));
        }

        foreach (var name in required)
        {
            if (!properties.Any(p => p.Name == name))
            {
                throw Fail(path + ".required", $"the required property '{name}' is not in properties (its schema would be unknown)");
            }
        }

        string rule = NewRule(path, "object");
        GrammarNode body;
        JsonElement additional = default;
        bool hasAdditional = schema.TryGetProperty("additionalProperties", out additional) && additional.ValueKind != JsonValueKind.False;
        if (hasAdditional && properties.Count > 0)
        {
            throw Fail(path + ".additionalProperties",
                "additionalProperties other than false is supported only on an object without properties (a map); set it to false or drop it");
        }

        if (properties.Count == 0 && !schema.TryGetProperty("additionalProperties", out _))
        {
            Define(rule, Ref(ObjectRule), replace: true);   // an object with no properties named: any members
            return Ref(rule);
        }

        if (hasAdditional)
        {
            var value = Schema(additional, path + ".additionalProperties");
            var member = Seq(Ref(StringRule), Ref(WsRule), Lit(":"), Ref(WsRule), value, Ref(WsRule));
            body = Repeat(Seq(member, Repeat(Seq(Lit(","), Ref(WsRule), member), 0, null)), 0, 1);
        }
        else
        {
            // first(i): members i.. with none written yet; rest(i): members i.., each after a comma.
            var members = properties.Select(p => Seq(
                Lit(Canonical(p.Name)), Ref(WsRule), Lit(":"), Ref(WsRule), Schema(p.Schema, $"{path}.properties.{p.Name}"), Ref(WsRule))).ToList();
            var rest = new GrammarNode[properties.Count + 1];
            var first = new GrammarNode[properties.Count + 1];
            rest[^1] = Lit("");
            first[^1] = Lit("");
            for (int i = properties.Count - 1; i >= 0; i--)
            {
                var afterComma = Seq(Lit(","), Ref(WsRule), members[i]);
                bool isRequired = required.Contains(properties[i].Name);
                rest[i] = Define(rule + "-rest" + i, Seq(isRequired ? afterComma : Repeat(afterComma, 0, 1), rest[i + 1]));
                first[i] = Define(rule + "-first" + i, isRequired
                    ? Seq(members[i], rest[i + 1])
                    : Choice(Seq(members[i], rest[i + 1]), first[i + 1]));
            }

            body = first[0];
        }

        Define(rule, Seq(Lit("{"), Ref(WsRule), body, Lit("}")), replace: true);
        return Ref(rule);
    }

    private GrammarNode IntegerSchema(JsonElement schema, string path, HashSet<string> keywords)
    {
        long limit = IntegerRanges.Largest;
        long? min = Bound(schema, "minimum", path, keywords), max = Bound(schema, "maximum", path, keywords);
        if (Bound(schema, "exclusiveMinimum", path, keywords) is { } exclusiveMin)
        {
            min = Math.Max(min ?? long.MinValue, exclusiveMin + 1);
        }

        if (Bound(schema, "exclusiveMaximum", path, keywords) is { } exclusiveMax)
        {
            max = Math.Min(max ?? long.MaxValue, exclusiveMax - 1);
        }

        if (min is null && max is null)
        {
            return Ref(IntegerRule);
        }

        long lo = Math.Max(min ?? -limit, -limit), hi = Math.Min(max ?? limit, limit);
        if (lo > hi)
        {
            throw Fail(path, min > max
                ? $"no integer lies between the minimum {min} and the maximum {max}"
                : $"the bounds leave no integer of at most {JsonGrammarParts.MaxIntegerDigits} digits");
        }

        return IntegerRanges.Between(lo, hi);
    }

    private static long? Bound(JsonElement schema, string keyword, string path, HashSet<string> keywords)
    {
        keywords.Remove(keyword);
        if (!schema.TryGetProperty(keyword, out var value))
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out double number) || double.IsNaN(number))
        {
            throw Fail(path + "." + keyword, $"{keyword} must be a number; found {value.GetRawText()}");
        }

        // An integer bound as is; a fractional one rounded inwards (minimum 1.5 → 2, maximum 1.5 → 1).
        double rounded = keyword.Contains("inimum", StringComparison.Ordinal) ? Math.Ceiling(number) : Math.Floor(number);
        if (keyword.StartsWith("exclusive", StringComparison.Ordinal) && rounded != number)
        {
            rounded += keyword == "exclusiveMinimum" ? -1 : 1;   // exclusive 1.5: integers from 2 (> 1) or up to 1 (< 2)
        }

        return (long)Math.Clamp(rounded, -1e15, 1e15);
    }

    private GrammarNode ArraySchema(JsonElement schema, string path, HashSet<string> keywords, int typeCount)
    {
        keywords.Remove("items");
        keywords.Remove("minItems");
        keywords.Remove("maxItems");
        string rule = NewRule(path, "array");
        var item = schema.TryGetProperty("items", out var items) ? Schema(items, path + ".items") : Ref(ValueRule);
        int min = Count(schema, "minItems", path) ?? 0;
        int? max = Count(schema, "maxItems", path);
        if (max < min)
        {
            throw Fail(path + ".maxItems", $"maxItems {max} is less than minItems {min}");
        }

        var element = Seq(item, Ref(WsRule));
        var more = Seq(Lit(","), Ref(WsRule), element);
        GrammarNode body = max == 0
            ? Lit("")
            : Seq(element, Repeat(more, Math.Max(0, min - 1), max - 1));
        if (min == 0 && max != 0)
        {
            body = Repeat(body, 0, 1);
        }

        Define(rule, Seq(Lit("["), Ref(WsRule), body, Lit("]")), replace: true);
        return Ref(rule);
    }

    private GrammarNode StringSchema(JsonElement schema, string path, HashSet<string> keywords, int typeCount)
    {
        keywords.Remove("minLength");
        keywords.Remove("maxLength");
        keywords.Remove("pattern");
        keywords.Remove("format");
        int? min = Count(schema, "minLength", path), max = Count(schema, "maxLength", path);
        string? pattern = null;
        string patternPath = path + ".pattern";
        if (schema.TryGetProperty("pattern", out var p))
        {
            pattern = p.ValueKind == JsonValueKind.String ? p.GetString() : throw Fail(patternPath, "pattern must be a string");
        }

        if (schema.TryGetProperty("format", out var f))
        {
            string format = f.ValueKind == JsonValueKind.String ? f.GetString()! : throw Fail(path + ".format", "format must be a string");
            if (!Formats.TryGetValue(format, out var formatPattern))
            {
                throw Fail(path + ".format", $"the format '{format}' is not supported; supported: {string.Join(", ", Formats.Keys)}");
            }

            if (pattern is not null)
            {
                throw Fail(path + ".format", "format together with pattern is not supported");
            }

            pattern = formatPattern;
            patternPath = path + ".format";
        }

        if (pattern is not null)
        {
            if (min is not null || max is not null)
            {
                throw Fail(path, "pattern (or format) together with minLength/maxLength is not supported; put the length in the pattern");
            }

            return Seq(Lit("\""), RegexTranslator.Translate(pattern, patternPath), Lit("\""));
        }

        if (max < min)
        {
            throw Fail(path + ".maxLength", $"maxLength {max} is less than minLength {min}");
        }

        if (min is null && max is null)
        {
            return Ref(StringRule);
        }

        return Seq(Lit("\""), Repeat(Ref(CharRule), min ?? 0, max), Lit("\""));
    }

    private string RefRule(JsonElement reference, string path)
    {
        if (reference.ValueKind != JsonValueKind.String)
        {
            throw Fail(path, "$ref must be a string");
        }

        string target = reference.GetString()!;
        if (_refRules.TryGetValue(target, out var known))
        {
            return known;
        }

        if (!target.StartsWith("#/", StringComparison.Ordinal))
        {
            throw Fail(path, $"only local references ('#', '#/$defs/Name', any '#/...' pointer) are supported; found '{target}'");
        }

        var node = _root;
        foreach (var raw in target[2..].Split('/'))
        {
            string part = Uri.UnescapeDataString(raw).Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal);
            if (node.ValueKind == JsonValueKind.Object && node.TryGetProperty(part, out var child))
            {
                node = child;
            }
            else if (node.ValueKind == JsonValueKind.Array && int.TryParse(part, out int index) && index >= 0 && index < node.GetArrayLength())
            {
                node = node[index];
            }
            else
            {
                throw Fail(path, $"the reference '{target}' points at nothing in the schema");
            }
        }

        string rule = NewRule(target, "ref");
        _refRules[target] = rule;
        string pointerPath = "$" + string.Concat(target[1..].Split('/').Where(s => s.Length > 0).Select(s => "." + s));
        Define(rule, Schema(node, pointerPath), replace: true);
        return rule;
    }

    private static List<(JsonElement Schema, string Path)> Subschemas(JsonElement list, string path)
    {
        if (list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0)
        {
            throw Fail(path, "expected a non-empty array of schemas");
        }

        return [.. list.EnumerateArray().Select((s, i) => (s, $"{path}[{i}]"))];
    }

    private static int? Count(JsonElement schema, string keyword, string path)
    {
        if (!schema.TryGetProperty(keyword, out var value))
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int n) || n < 0)
        {
            throw Fail(path + "." + keyword, $"{keyword} must be a non-negative integer; found {value.GetRawText()}");
        }

        if (n > GbnfParser.MaxRepeat)
        {
            throw Fail(path + "." + keyword, $"{keyword} {n} is more than the limit of {GbnfParser.MaxRepeat}");
        }

        return n;
    }

    private static void Only(HashSet<string> keywords, string path, params string[] allowed)
    {
        foreach (var keyword in keywords)
        {
            if (!allowed.Contains(keyword))
            {
                throw Fail(path + "." + keyword,
                    $"the keyword '{keyword}' beside '{allowed[0]}' is not supported ('{allowed[0]}' is compiled alone; annotations may stay)");
            }
        }
    }

    /// <summary>A fresh rule name from a JSON path ("$.properties.name" → "root-name-object"), reserved with a placeholder body.</summary>
    private string NewRule(string path, string what)
    {
        var name = new StringBuilder("root");
        foreach (var part in path.Split('.', '/', '[', ']').Where(p => p.Length > 0 && p is not ("$" or "#" or "properties" or "$defs" or "definitions")))
        {
            name.Append('-');
            foreach (char c in part)
            {
                name.Append(char.IsAsciiLetterOrDigit(c) ? char.ToLowerInvariant(c) : '-');
            }
        }

        name.Append('-').Append(what);
        string baseName = name.ToString(), unique = baseName;
        for (int i = 2; !_names.Add(unique); i++)
        {
            unique = baseName + i;
        }

        _rules.Add(new(unique, Lit("")));
        return unique;
    }

    private GrammarNode Define(string name, GrammarNode body, bool replace = false)
    {
        if (replace)
        {
            int at = _rules.FindIndex(r => r.Key == name);
            _rules[at] = new(name, body);
        }
        else
        {
            _names.Add(name);
            _rules.Add(new(name, body));
        }

        return Ref(name);
    }

    /// <summary>A value as compact JSON, the form a const or enum is written in.</summary>
    private static string Canonical(JsonElement value) => JsonSerializer.Serialize(value, Compact);

    private static string Canonical(string text) => JsonSerializer.Serialize(text, Compact);

    private static string Kind(JsonElement value) => value.ValueKind.ToString().ToLowerInvariant();

    private static OnnxGptException Fail(string path, string what) => new($"{Source}: {path}: {what}.");
}

namespace OnnxGpt.Tests.Runtime.Constraints;

/// <summary>One schema per supported construct, for the property tests.</summary>
internal static class TestSchemas
{
    /// <summary>Schemas whose every string has a maximum length (the rest allow strings a random model may never close).</summary>
    public static readonly HashSet<string> Unbounded = ["pattern, unanchored", "map", "any value"];

    /// <summary>Schemas whose text needs '{' (tiny-random-gpt2's trimmed vocabulary has no token with it).</summary>
    public static readonly HashSet<string> NeedObjects = ["object, required", "object, optional", "const", "$ref, $defs, recursion", "nested", "map", "format", "any value"];

    public static readonly (string Name, string Schema)[] All =
    [
        ("object, required", """{"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer"}},"required":["name","age"],"additionalProperties":false}"""),
        ("object, optional", """{"type":"object","properties":{"a":{"type":"boolean"},"b":{"type":"null"},"c":{"type":"number"}},"required":["b"]}"""),
        ("array, min/max items", """{"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":4}"""),
        ("string, min/max length", """{"type":"string","minLength":3,"maxLength":8}"""),
        ("enum", """{"enum":["red","green","blue",1,null,true]}"""),
        ("const", """{"type":"object","properties":{"kind":{"const":"point"},"x":{"type":"number"}},"required":["kind","x"]}"""),
        ("pattern", """{"type":"string","pattern":"^[A-Z][a-z]{1,6}-\\d{2}$"}"""),
        ("pattern, unanchored", """{"type":"string","pattern":"\\d|x\\.y"}"""),
        ("anyOf", """{"anyOf":[{"type":"string","maxLength":5},{"type":"integer"},{"type":"null"}]}"""),
        ("type list", """{"type":["boolean","null","integer"]}"""),
        ("$ref, $defs, recursion", """{"$ref":"#/$defs/node","$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/node"},"maxItems":1}},"required":["v","kids"]}}}"""),
        ("integer range", """{"type":"array","items":{"type":"integer","minimum":-42,"maximum":1234},"minItems":1,"maxItems":3}"""),
        ("exclusive range", """{"type":"integer","exclusiveMinimum":7,"exclusiveMaximum":100000}"""),
        ("nested", """{"type":"object","properties":{"p":{"type":"object","properties":{"q":{"type":"array","items":{"enum":["x","y"]},"maxItems":3}},"required":["q"]}},"required":["p"]}"""),
        ("map", """{"type":"object","additionalProperties":{"type":"boolean"}}"""),
        ("format", """{"type":"object","properties":{"d":{"type":"string","format":"date"},"u":{"type":"string","format":"uuid"},"t":{"type":"string","format":"date-time"}},"required":["d","u","t"]}"""),
        ("any value", """{}"""),
    ];
}

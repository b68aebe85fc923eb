using System.Text;
using System.Text.Json;
using OnnxGpt.Runtime.Constraints;

namespace OnnxGpt.Tests.Runtime.Constraints;

/// <summary>What the JSON Schema compiler accepts, refuses, and how the compiled grammar matches JSON texts.</summary>
[TestClass]
public sealed class JsonSchemaCompilerTests
{
    private static readonly ByteTokenizer Bytes = new([.. Enumerable.Range(0, 256).Select(b => new[] { (byte)b })]);

    private static bool Accepts(string schema, string json)
    {
        var state = OutputConstraint.FromJsonSchema(schema).Start(Bytes);
        foreach (byte b in Encoding.UTF8.GetBytes(json))
        {
            if (!state.TryAdvance(b))
            {
                return false;
            }
        }

        return state.IsComplete;
    }

    [TestMethod]
    [DataRow("""{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"required":["a"]}""", """{"a": 1, "b": "x"}""", true)]
    [DataRow("""{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"required":["a"]}""", """{"a":1}""", true)]
    [DataRow("""{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"required":["a"]}""", """{"b":"x"}""", false)]
    [DataRow("""{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"required":["a"]}""", """{"a":1,}""", false)]
    [DataRow("""{"type":"object","properties":{"a":{"type":"integer"}}}""", """{}""", true)]
    [DataRow("""{"type":"object","properties":{"a":{"type":"integer"}}}""", """{"c":1}""", false)]
    [DataRow("""{"type":"array","items":{"type":"boolean"},"minItems":1,"maxItems":2}""", """[true, false]""", true)]
    [DataRow("""{"type":"array","items":{"type":"boolean"},"minItems":1,"maxItems":2}""", """[]""", false)]
    [DataRow("""{"type":"array","items":{"type":"boolean"},"minItems":1,"maxItems":2}""", """[true,true,true]""", false)]
    [DataRow("""{"type":"string","minLength":2,"maxLength":3}""", "\"\\u00e9\\n\"", true)]
    [DataRow("""{"type":"string","minLength":2,"maxLength":3}""", "\"abcd\"", false)]
    [DataRow("""{"type":"string","maxLength":3}""", "\"\\ud800\"", false)]
    [DataRow("""{"enum":["a",1.5,null,{"k":[1]}]}""", """{"k":[1]}""", true)]
    [DataRow("""{"const":"x\"y"}""", "\"x\\\"y\"", true)]
    [DataRow("""{"type":"integer","minimum":-5,"maximum":250}""", "-5", true)]
    [DataRow("""{"type":"integer","minimum":-5,"maximum":250}""", "251", false)]
    [DataRow("""{"type":"integer","minimum":-5,"maximum":250}""", "-6", false)]
    [DataRow("""{"type":"integer","minimum":-5,"maximum":250}""", "007", false)]
    [DataRow("""{"type":"integer","exclusiveMinimum":1.5}""", "1", false)]
    [DataRow("""{"type":"integer","exclusiveMinimum":1.5}""", "2", true)]
    [DataRow("""{"type":"number"}""", "-0.25e+10", true)]
    [DataRow("""{"type":"number"}""", "01", false)]
    [DataRow("""{"type":"string","pattern":"^[a-c]+-\\d{2}$"}""", "\"abc-42\"", true)]
    [DataRow("""{"type":"string","pattern":"^[a-c]+-\\d{2}$"}""", "\"abc-4\"", false)]
    [DataRow("""{"type":"string","pattern":"x"}""", "\"a\\\"x\\\\\"", true)]
    [DataRow("""{"type":"string","format":"date"}""", "\"2024-02-29\"", false)]
    [DataRow("""{"type":"string","format":"date"}""", "\"2024-04-30\"", true)]
    [DataRow("""{"$defs":{"n":{"anyOf":[{"type":"null"},{"type":"array","items":{"$ref":"#/$defs/n"}}]}},"$ref":"#/$defs/n"}""", "[[null,[]],null]", true)]
    [DataRow("""{"type":["string","null"]}""", "null", true)]
    [DataRow("""{"type":"object","additionalProperties":{"type":"integer"}}""", """{"x":1,"y":2}""", true)]
    [DataRow("""{}""", """ {"any": [1, "thing", {"at": null}]}""", true)]
    public void TheCompiledGrammarAcceptsExactlyTheSchemasJson(string schema, string json, bool expected) =>
        Assert.AreEqual(expected, Accepts(schema, json), $"{json} against {schema}");

    [TestMethod]
    [DataRow("""{"type":"number","multipleOf":3}""", "$.multipleOf", "'multipleOf' is not supported")]
    [DataRow("""{"type":"object","properties":{"a":{"type":"string","contentEncoding":"base64"}}}""", "$.properties.a.contentEncoding", "not supported")]
    [DataRow("""{"type":"array","prefixItems":[{"type":"integer"}]}""", "$.prefixItems", "not supported")]
    [DataRow("""{"type":"array","items":{"type":"integer","maximum":3.5,"minimum":"x"}}""", "$.items.minimum", "must be a number")]
    [DataRow("""{"type":"number","minimum":0}""", "$.minimum", "integers only")]
    [DataRow("""{"type":"string","minLength":3,"maximum":2}""", "$.maximum", "applies to integer values")]
    [DataRow("""{"oneOf":[{"type":"integer"}]}""", "$.oneOf", "not supported")]
    [DataRow("""{"allOf":[{"type":"integer"},{"minimum":1}]}""", "$.allOf", "one schema only")]
    [DataRow("""{"$ref":"https://example.com/s.json"}""", "$.$ref", "only local references")]
    [DataRow("""{"$ref":"#/$defs/missing"}""", "$.$ref", "points at nothing")]
    [DataRow("""{"type":"string","format":"email"}""", "$.format", "'email' is not supported")]
    [DataRow("""{"type":"string","pattern":"(?=a)b"}""", "$.pattern", "lookahead")]
    [DataRow("""{"type":"string","pattern":"(a)\\1"}""", "$.pattern", "backreferences")]
    [DataRow("""{"type":"string","pattern":"a\\b"}""", "$.pattern", "word boundaries")]
    [DataRow("""{"type":"string","pattern":"a","maxLength":3}""", "$", "pattern (or format) together with minLength/maxLength")]
    [DataRow("""{"type":"object","properties":{"a":{}},"additionalProperties":true}""", "$.additionalProperties", "only on an object without properties")]
    [DataRow("""{"type":"object","required":["b"],"properties":{"a":{}}}""", "$.required", "'b' is not in properties")]
    [DataRow("""{"type":"integer","minimum":5,"maximum":4}""", "$", "no integer lies between")]
    [DataRow("""{"type":"wide"}""", "$.type", "unknown type 'wide'")]
    [DataRow("""false""", "$", "no value satisfies")]
    [DataRow("""{"type":"array","items":{"type":"string"},"maxItems":200000}""", "$.maxItems", "more than the limit")]
    public void KeywordsOutsideTheSubsetAreRefusedNamingTheKeywordAndItsPath(string schema, string path, string what)
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() => Grammar.FromJsonSchema(schema));
        StringAssert.Contains(e.Message, $"JSON schema: {path}:");
        StringAssert.Contains(e.Message, what);
    }

    [TestMethod]
    public void AnnotationsConstrainNothing()
    {
        string plain = Grammar.FromJsonSchema("""{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}""").ToString();
        string annotated = Grammar.FromJsonSchema("""
            {"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"urn:x","title":"T","description":"d","$comment":"c",
             "type":"object","properties":{"a":{"type":"integer","description":"the a","default":1,"examples":[2],"deprecated":false}},"required":["a"]}
            """).ToString();
        Assert.AreEqual(plain, annotated);
    }

    [TestMethod]
    public void InvalidJsonIsAClearError()
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() => OutputConstraint.FromJsonSchema("{\"type\":"));
        StringAssert.Contains(e.Message, "not valid JSON");
        using var doc = JsonDocument.Parse("[1]");
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => OutputConstraint.FromJsonSchema(doc.RootElement)).Message, "must be an object or a boolean");
    }
}

using System.Text.Json;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary><c>generate --json-schema / --grammar / --json-object</c> on the shipped Shakespeare model.</summary>
[TestClass]
public sealed class ConstrainedGenerateCommandTests
{
    private static string Shakespeare => Path.Combine(TestPaths.RepoRoot, "models", "shakespeare-char");

    private static (int Code, string Out, string Err) Cli(params string[] args) => ExportCommandTests.Cli(args);

    [TestMethod]
    public void GrammarFileShapesTheStreamedText()
    {
        using var tmp = TestPaths.NewTemp();
        string grammar = tmp.Write("speaker.gbnf", System.Text.Encoding.UTF8.GetBytes("root ::= (\"ROMEO\" | \"JULIET\") \":\\n\" [A-Z] [a-z ]{3,20} \".\"\n"));
        var (code, output, err) = Cli("generate", "--model", Shakespeare, "--prompt", "\n", "--grammar", grammar, "--seed", "4", "--max-new-tokens", "60");
        Assert.AreEqual(0, code, err);
        StringAssert.Matches(output, new System.Text.RegularExpressions.Regex(@"^\n(ROMEO|JULIET):\n[A-Z][a-z ]{3,20}\.\r?\n$"));
    }

    [TestMethod]
    public void JsonSchemaFileWithJsonOutputReportsTheConstraintComplete()
    {
        using var tmp = TestPaths.NewTemp();
        string schema = tmp.Write("schema.json", """{"enum":[true,false,null]}"""u8.ToArray());
        var (code, output, err) = Cli("generate", "--model", Shakespeare, "--prompt", "ROMEO:", "--json-schema", schema, "--seed", "1", "--json");
        Assert.AreEqual(0, code, err);
        using var json = JsonDocument.Parse(output.Trim());
        CollectionAssert.Contains(new[] { "true", "false", "null" }, json.RootElement.GetProperty("text").GetString()!.Trim(), "the text, after the whitespace JSON allows before a value");
        Assert.IsTrue(json.RootElement.GetProperty("constraint_complete").GetBoolean());
        Assert.AreEqual("constraint_complete", json.RootElement.GetProperty("finish_reason").GetString());
    }

    [TestMethod]
    public void BadConstraintsAreRefusedNamingTheFileAndWhatIsWrong()
    {
        using var tmp = TestPaths.NewTemp();
        string unsupported = tmp.Write("bad.json", """{"type":"string","contentMediaType":"text/html"}"""u8.ToArray());
        var (code, _, err) = Cli("generate", "--model", Shakespeare, "--prompt", "x", "--json-schema", unsupported);
        Assert.AreEqual(1, code, err);
        StringAssert.Contains(err, "bad.json");
        StringAssert.Contains(err, "$.contentMediaType");

        string badGrammar = tmp.Write("bad.gbnf", "root ::= \"a\" (\n"u8.ToArray());
        (code, _, err) = Cli("generate", "--model", Shakespeare, "--prompt", "x", "--grammar", badGrammar);
        Assert.AreEqual(1, code, err);
        StringAssert.Contains(err, "bad.gbnf:2:1");

        // The Shakespeare vocabulary has no '{' nor '"': an object cannot be written, and says so.
        (code, _, err) = Cli("generate", "--model", Shakespeare, "--prompt", "x", "--json-object");
        Assert.AreEqual(0, code, err);   // any JSON value: true, false, null and numbers of 3s remain writable
        (code, _, err) = Cli("generate", "--model", Shakespeare, "--prompt", "x", "--grammar", badGrammar, "--json-object");
        Assert.AreEqual(2, code, err);
        StringAssert.Contains(err, "at most one of --json-schema, --grammar, --json-object");
    }
}

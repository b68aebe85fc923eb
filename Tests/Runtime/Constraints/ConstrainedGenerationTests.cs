using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using Json.Schema;
using Microsoft.Extensions.AI;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Constraints;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Constraints;

/// <summary>
/// Constrained generation on real models through the generator and the chat client: a seeded GPT with GPT-2's
/// tokenizer (50257 tokens), the real tiny-random-gpt2 checkpoint (its 1000-token BPE has no '{'), and the shipped
/// Shakespeare model (65 characters: no '{', '"', '[' nor digits but 3).
/// </summary>
[TestClass]
public sealed class ConstrainedGenerationTests
{
    private static TempFolder? s_tmp;
    private static GptModel? s_gpt2Vocab;
    private static GptModel? s_tinyGpt2;
    private static GptModel? s_shakespeare;

    public TestContext TestContext { get; set; } = null!;

    /// <summary>A record as an app would ask for; the annotations bound it, so any model finishes it within the token budget.</summary>
    public sealed record Person([property: MaxLength(10)] string Name, [property: Range(0, 120)] int Age, bool Admin);

    [ClassInitialize]
    public static void Initialize(TestContext _)
    {
        s_tmp = new TempFolder();
        s_gpt2Vocab = GptModel.Load(ChatModels.ExportGpt2Vocabulary(s_tmp));
        s_tinyGpt2 = GptModel.Load(ChatModels.ExportTinyGpt2(s_tmp));
        s_shakespeare = GptModel.Load(Path.Combine(TestPaths.RepoRoot, "models", "shakespeare-char"));
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        s_gpt2Vocab?.Dispose();
        s_tinyGpt2?.Dispose();
        s_shakespeare?.Dispose();
        s_tmp?.Dispose();
    }

    private static GptModel Model(string name) => name switch
    {
        "gpt2-vocab" => s_gpt2Vocab!,
        "tiny-random-gpt2" => s_tinyGpt2!,
        "shakespeare" => s_shakespeare!,
        _ => throw new ArgumentException(name),
    };

    private static readonly GenerationOptions[] Samplers =
    [
        new() { Temperature = 1.0, TopK = 0 },
        new() { DoSample = false },
        new() { Temperature = 0.8, TopK = 40, TopP = 0.9 },
        new() { Temperature = 1.3, TopK = 0, TopP = 0.95, RepetitionPenalty = 1.2 },
    ];

    /// <summary>Schemas the Shakespeare model's 65 characters can write (true, false, null, numbers of 3s).</summary>
    private static readonly (string Name, string Schema)[] ShakespeareSchemas =
    [
        ("boolean", """{"type":"boolean"}"""),
        ("null", """{"type":"null"}"""),
        ("enum", """{"enum":[true,false,null]}"""),
        ("integer", """{"type":"integer"}"""),
        ("number", """{"type":"number"}"""),
        ("type list", """{"type":["boolean","integer"]}"""),
        ("anyOf", """{"anyOf":[{"type":"null"},{"type":"number"}]}"""),
        ("integer range", """{"type":"integer","minimum":-3,"maximum":333}"""),
    ];

    [TestMethod]
    [DataRow("gpt2-vocab", 4)]
    [DataRow("tiny-random-gpt2", 25)]
    [DataRow("shakespeare", 25)]
    public void EverySeededGenerationParsesAndValidates(string modelName, int seedsPerSchema)
    {
        var model = Model(modelName);
        var schemas = modelName switch
        {
            "shakespeare" => ShakespeareSchemas,
            "tiny-random-gpt2" => TestSchemas.All.Where(s => !TestSchemas.NeedObjects.Contains(s.Name) && !TestSchemas.Unbounded.Contains(s.Name)).ToArray(),
            _ => TestSchemas.All.Where(s => !TestSchemas.Unbounded.Contains(s.Name)).ToArray(),
        };
        string prompt = modelName == "shakespeare" ? "ROMEO:\n" : "The answer, as JSON:";
        int generations = 0, parsed = 0, valid = 0, tokens = 0, eos = 0;
        var failures = new List<string>();
        foreach (var (name, schemaText) in schemas)
        {
            var constraint = OutputConstraint.FromJsonSchema(schemaText);
            var validator = JsonSchema.FromText(schemaText);
            for (int seed = 0; seed < seedsPerSchema; seed++)
            {
                var options = Samplers[seed % Samplers.Length] with { Seed = (ulong)seed, MaxNewTokens = 250, Constraint = constraint };
                using var generator = model.CreateGenerator(options);
                generator.AppendText(prompt);
                var result = generator.GenerateAll()[0];
                generations++;
                tokens += result.NewTokens;
                eos += result.FinishReason == FinishReason.EndOfSequence ? 1 : 0;
                if (result.ConstraintComplete != true)
                {
                    failures.Add($"{name}, seed {seed}: incomplete ({result.FinishReason}) after {result.NewTokens} tokens: {result.Text}");
                    continue;
                }

                try
                {
                    using var document = JsonDocument.Parse(result.Text!);
                    parsed++;
                    if (validator.Evaluate(document.RootElement, new EvaluationOptions { RequireFormatValidation = true }).IsValid)
                    {
                        valid++;
                    }
                    else
                    {
                        failures.Add($"{name}, seed {seed}: not valid: {result.Text}");
                    }
                }
                catch (JsonException e)
                {
                    failures.Add($"{name}, seed {seed}: does not parse ({e.Message}): {result.Text}");
                }
            }
        }

        Console.WriteLine($"{modelName}: {generations} generations ({tokens} tokens, {eos} ended by end-of-text), {parsed} parse, {valid} schema-valid");
        Assert.AreEqual(0, failures.Count, string.Join("\n", failures.Take(10)));
        Assert.AreEqual(generations, valid);
    }

    [TestMethod]
    public async Task GetResponseAsyncOfARecordDeserialisesOnEverySeed()
    {
        using var client = new OnnxGptChatClient(s_gpt2Vocab!);
        ChatMessage[] messages = [new(ChatRole.User, "Describe a person as JSON.")];
        for (int seed = 0; seed < 8; seed++)
        {
            var options = new ChatOptions { Seed = seed, Temperature = seed % 2 == 0 ? 1.0f : 0.7f, MaxOutputTokens = 200 };
            var response = await client.GetResponseAsync<Person>(messages, options, useJsonSchemaResponseFormat: true, cancellationToken: TestContext.CancellationToken);
            Assert.IsTrue(response.TryGetResult(out var person), $"seed {seed}: '{response.Text}' ({response.FinishReason}) did not deserialise");
            Assert.IsNotNull(person!.Name);
            Assert.IsLessThanOrEqualTo(10, person.Name.EnumerateRunes().Count(), $"seed {seed}: maxLength counts characters");
            Assert.IsTrue(person.Age is >= 0 and <= 120, $"seed {seed}: age {person.Age} outside the [Range]");
            Assert.AreEqual(ChatFinishReason.Stop, response.FinishReason);
        }
    }

    [TestMethod]
    public async Task JsonResponseFormatGivesJson()
    {
        using var client = new OnnxGptChatClient(s_gpt2Vocab!);
        var options = new ChatOptions { Seed = 3, MaxOutputTokens = 60, ResponseFormat = ChatResponseFormat.Json };
        var response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "Some JSON please")], options, TestContext.CancellationToken);
        if (response.FinishReason == ChatFinishReason.Length)
        {
            Assert.AreEqual(true, response.Messages[^1].AdditionalProperties?[OnnxGptChatClient.IncompleteProperty], "a reply cut short says it is incomplete");
        }
        else
        {
            using var _ = JsonDocument.Parse(response.Text);
        }

        // A budget too small for the record: finish reason length, marked incomplete.
        var cut = await client.GetResponseAsync<Person>([new ChatMessage(ChatRole.User, "Person?")],
            new ChatOptions { Seed = 1, MaxOutputTokens = 3 }, cancellationToken: TestContext.CancellationToken);
        Assert.AreEqual(ChatFinishReason.Length, cut.FinishReason);
        Assert.AreEqual(true, cut.Messages[^1].AdditionalProperties?[OnnxGptChatClient.IncompleteProperty]);
        Assert.IsFalse(cut.TryGetResult(out _));
    }

    [TestMethod]
    public void ASchemaOutsideTheSubsetIsRefusedNamingTheKeyword()
    {
        using var client = new OnnxGptChatClient(s_gpt2Vocab!);
        using var schema = JsonDocument.Parse("""{"type":"object","properties":{"n":{"type":"number","multipleOf":2}}}""");
        var options = new ChatOptions { ResponseFormat = ChatResponseFormat.ForJsonSchema(schema.RootElement.Clone()) };
        var e = Assert.ThrowsExactly<OnnxGptException>(() => client.MapOptions(options, []));
        StringAssert.Contains(e.Message, "$.properties.n.multipleOf");
        StringAssert.Contains(e.Message, "'multipleOf'");
    }

    [TestMethod]
    public void AVocabularyThatCannotWriteTheSchemaIsRefusedNamingWhatItLacks()
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() =>
            s_shakespeare!.CreateGenerator(new GenerationOptions { Constraint = OutputConstraint.FromJsonSchema("""{"type":"object"}""") }).Append([1]));
        StringAssert.Contains(e.Message, "'{' (U+007B)");
        StringAssert.Contains(e.Message, "65 char tokens");
    }

    [TestMethod]
    public void AGrammarShapesTheShakespeareModelsText()
    {
        var grammar = OutputConstraint.FromGrammar("""
            root ::= speaker ":\n" line ("\n" line)?
            speaker ::= "ROMEO" | "JULIET" | "FRIAR LAURENCE"
            line ::= [A-Z] [a-z ,']{3,40} [.!?]
            """);
        for (int seed = 0; seed < 10; seed++)
        {
            using var generator = s_shakespeare!.CreateGenerator(new GenerationOptions { Seed = (ulong)seed, Temperature = 0.8, MaxNewTokens = 100, Constraint = grammar });
            generator.AppendText("\n\n");
            var result = generator.GenerateAll()[0];
            StringAssert.Matches(result.Text, new System.Text.RegularExpressions.Regex(@"^(ROMEO|JULIET|FRIAR LAURENCE):\n[A-Z][a-z ,']{3,40}[.!?](\n[A-Z][a-z ,']{3,40}[.!?])?$"), $"seed {seed}");
            Assert.IsTrue(result.ConstraintComplete, $"seed {seed}: {result.FinishReason}");
        }
    }

    [TestMethod]
    public void AConstrainedRowSharesABatchWithAFreeOneAndEachMatchesItsSoloRun()
    {
        var model = s_gpt2Vocab!;
        var constraint = OutputConstraint.FromJsonSchema(TestSchemas.All[0].Schema);
        var greedy = new GenerationOptions { DoSample = false, MaxNewTokens = 200 };
        string[] prompts = ["Person:", "Once upon a time"];
        using var batch = model.CreateGenerator(greedy with { Constraint = constraint });
        batch.AppendTextBatch(prompts);
        batch.SetConstraint(1, null);
        var rows = batch.GenerateAll();

        using var soloConstrained = model.CreateGenerator(greedy with { Constraint = constraint });
        soloConstrained.AppendText(prompts[0]);
        using var soloFree = model.CreateGenerator(greedy);
        soloFree.AppendText(prompts[1]);
        CollectionAssert.AreEqual(soloConstrained.GenerateAll()[0].NewIds.ToArray(), rows[0].NewIds.ToArray(), "the constrained row");
        CollectionAssert.AreEqual(soloFree.GenerateAll()[0].NewIds.ToArray(), rows[1].NewIds.ToArray(), "the free row");
        Assert.IsTrue(rows[0].ConstraintComplete);
        Assert.IsNull(rows[1].ConstraintComplete);
        using var _ = JsonDocument.Parse(rows[0].Text!);
    }

    [TestMethod]
    public void RewindReplaysTheKeptTokensThroughTheConstraint()
    {
        var constraint = OutputConstraint.FromJsonSchema(TestSchemas.All[0].Schema);
        using var generator = s_gpt2Vocab!.CreateGenerator(new GenerationOptions { DoSample = false, MaxNewTokens = 60, Constraint = constraint });
        generator.AppendText("Person:");
        int prompt = generator.Length;
        var first = generator.GenerateAll()[0];
        generator.RewindTo(prompt + 3);
        Assert.AreEqual(3, generator.GetConstraintState(0)!.TokenCount);
        var again = generator.GenerateAll()[0];
        Assert.AreEqual(first.Text, again.Text);
        Assert.IsTrue(again.ConstraintComplete);
    }

    [TestMethod]
    public void ConstrainedTokensAllocateNothingOnceTheStatesAreKnown()
    {
        var model = s_gpt2Vocab!;
        var constraint = OutputConstraint.FromJsonSchema(TestSchemas.All[0].Schema);
        double free = Measure(null), constrained = Measure(constraint);
        Console.WriteLine($"managed bytes per token: {free:F1} free, {constrained:F1} constrained");
        Assert.IsLessThanOrEqualTo(free + 1, constrained, $"the constraint allocates {constrained - free:F1} bytes per token");

        double Measure(OutputConstraint? c)
        {
            var options = new GenerationOptions { DoSample = false, MaxNewTokens = 30, Constraint = c };
            using var generator = model.CreateGenerator(options, new GeneratorOptions { DecodeText = false, StopAtEndOfSequence = false });
            var prompt = model.Tokenizer!.Encode("Person:");
            generator.Append(prompt);
            generator.GenerateAll();                  // the first run meets the states and computes their masks
            generator.RewindTo(prompt.Length);
            generator.GenerateNextToken();            // the prompt's logits again
            long before = GC.GetAllocatedBytesForCurrentThread();
            int n = 0;
            while (!generator.IsDone)
            {
                generator.GenerateNextToken();
                n++;
            }

            Assert.IsGreaterThan(5, n);
            return (GC.GetAllocatedBytesForCurrentThread() - before) / (double)n;
        }
    }

    [TestMethod]
    public void AShortBudgetEndsIncompleteForLength()
    {
        var constraint = OutputConstraint.FromJsonSchema(TestSchemas.All[0].Schema);
        using var generator = s_gpt2Vocab!.CreateGenerator(new GenerationOptions { Seed = 1, MaxNewTokens = 3, Constraint = constraint });
        generator.AppendText("x");
        var result = generator.GenerateAll()[0];
        Assert.AreEqual(FinishReason.MaxNewTokens, result.FinishReason);
        Assert.IsFalse(result.ConstraintComplete);
    }
}

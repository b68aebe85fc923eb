using System.Text;
using System.Text.Json;
using Json.Schema;
using OnnxGpt.Runtime.Constraints;
using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Tests.Runtime.Constraints;

/// <summary>
/// Property tests of the constraint engine on random-logit "models" over real vocabularies: for every schema
/// construct, many seeds and sampler settings, the text parses, an independent validator (JsonSchema.Net) accepts
/// it, and a brute-force oracle agrees with the mask on every token at every step.
/// </summary>
[TestClass]
public sealed class ConstraintPropertyTests
{
    private static readonly GenerationOptions[] Samplers =
    [
        new() { Temperature = 1.0, TopK = 0 },
        new() { DoSample = false },
        new() { Temperature = 0.7, TopK = 40, TopP = 0.9 },
        new() { Temperature = 1.5, TopK = 0, TopP = 0.95, RepetitionPenalty = 1.3 },
    ];

    [TestMethod]
    [DataRow("char", 12, 2000, false, false)]
    [DataRow("tiny-gpt2", 12, 2000, true, true)]
    [DataRow("gpt2", 2, 400, true, false)]
    public void EveryGenerationParsesAndValidates(string vocabulary, int seedsPerSchema, int maxTokens, bool boundedOnly, bool withoutObjects)
    {
        var tokenizer = ConstraintVocabularies.Get(vocabulary);
        int generations = 0, parsed = 0, valid = 0, tokens = 0;
        var failures = new List<string>();
        foreach (var (name, schemaText) in TestSchemas.All.Where(s => (!boundedOnly || !TestSchemas.Unbounded.Contains(s.Name)) && (!withoutObjects || !TestSchemas.NeedObjects.Contains(s.Name))))
        {
            var constraint = OutputConstraint.FromJsonSchema(schemaText);
            var validator = JsonSchema.FromText(schemaText);
            for (int seed = 0; seed < seedsPerSchema; seed++)
            {
                var options = Samplers[seed % Samplers.Length];
                var (bytes, complete, n) = RandomLogitsModel.Generate(tokenizer, constraint.Start(tokenizer), options, (ulong)seed, maxTokens);
                generations++;
                tokens += n;
                string text = Encoding.UTF8.GetString(bytes);
                if (!complete)
                {
                    failures.Add($"{name}, seed {seed}: incomplete after {n} tokens: {text}");
                    continue;
                }

                JsonDocument document;
                try
                {
                    document = JsonDocument.Parse(bytes);
                }
                catch (JsonException e)
                {
                    failures.Add($"{name}, seed {seed}: does not parse ({e.Message}): {text}");
                    continue;
                }

                parsed++;
                using (document)
                {
                    var result = validator.Evaluate(document.RootElement, new EvaluationOptions { RequireFormatValidation = true, OutputFormat = OutputFormat.List });
                    if (result.IsValid)
                    {
                        valid++;
                    }
                    else
                    {
                        failures.Add($"{name}, seed {seed}: invalid: {text}");
                    }
                }
            }
        }

        Console.WriteLine($"{vocabulary}: {generations} generations ({tokens} tokens), {parsed} parse, {valid} schema-valid");
        Assert.AreEqual(0, failures.Count, string.Join("\n", failures.Take(10)));
        Assert.AreEqual(generations, valid);
    }

    [TestMethod]
    public void TheMaskAgreesWithABruteForceOracleOnEveryToken()
    {
        var tokenizer = ConstraintVocabularies.Small();
        int endToken = tokenizer.VocabularySize - 1;
        long steps = 0, checkedTokens = 0, allowed = 0;
        var schemas = TestSchemas.All.Select(s => (s.Name, Constraint: OutputConstraint.FromJsonSchema(s.Schema)))
            .Append(("any JSON", OutputConstraint.AnyJson))
            .Append(("grammar", OutputConstraint.FromGrammar("root ::= (\"ab\" | [a-c]+ \"-\" [^a-z\\n]) [0-9]{1,3} | \"é\" .{2}")));
        foreach (var (name, constraint) in schemas)
        {
            var lowering = constraint.Compile(tokenizer).Lowering;
            for (int seed = 0; seed < 2; seed++)
            {
                var oracle = new EarleyOracle(lowering);
                RandomLogitsModel.Generate(tokenizer, constraint.Start(tokenizer, [endToken]), Samplers[seed % Samplers.Length], (ulong)seed, maxTokens: 40, endToken,
                    beforeEachToken: (state, _) =>
                    {
                        steps++;
                        Assert.AreEqual(oracle.IsComplete, state.IsComplete, $"{name}: completeness after {oracle.Length} bytes");
                        for (int id = 0; id < tokenizer.VocabularySize; id++)
                        {
                            bool expected = id == endToken ? oracle.IsComplete : oracle.Allows(tokenizer.GetTokenBytes(id));
                            if (expected != state.IsAllowed(id))
                            {
                                Assert.Fail($"{name}, seed {seed}, step {steps}: token {id} ({Show(tokenizer.GetTokenBytes(id))}) is {(expected ? "valid" : "invalid")} by the oracle but the mask says otherwise");
                            }

                            checkedTokens++;
                            allowed += expected ? 1 : 0;
                        }
                    },
                    tokenTaken: token =>
                    {
                        if (token != endToken)
                        {
                            foreach (byte b in tokenizer.GetTokenBytes(token))
                            {
                                oracle.Push(b);
                            }
                        }
                    });
            }
        }

        Console.WriteLine($"oracle: {steps} steps, {checkedTokens} token checks ({allowed} allowed), all agree");
        Assert.IsTrue(steps > 100);
    }

    private static string Show(ReadOnlySpan<byte> bytes) => string.Join(" ", bytes.ToArray().Select(b => b.ToString("X2")));
}

using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Batching;
using OnnxGpt.Runtime.Constraints;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Runtime.Batching;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>
/// Speculative decoding against plain decoding of the same model: greedy output token for token on every flavour
/// (portable and fused, float32 and int4 targets, float32 and float16 caches), with drafts that mostly agree (the int4 export of the same
/// weights, prompt lookup) and one that mostly does not (other weights), through stops, rewinds and the batch engine;
/// with sampling, the distribution of the first token the accept/reject step picks against the model's own, by a
/// chi-square test over many seeded draws on a vocabulary of 8.
/// </summary>
[TestClass]
public sealed class SpeculativeDecodingTests
{
    private static readonly GenerationOptions Greedy = new() { DoSample = false, MaxNewTokens = 40 };
    private static readonly int[] Prompt = [5, 17, 3, 52, 9, 5, 17];
    private static TempFolder? s_tmp;
    private static readonly Dictionary<string, GptModel> s_models = [];

    public TestContext TestContext { get; set; } = null!;

    [ClassInitialize]
    public static void Initialize(TestContext _)
    {
        s_tmp = new TempFolder();
        var config = TestWeights.Small(heads: 4, width: 32) with { ContextLength = 64 };
        var same = TestWeights.Random(config, seed: 161);
        var other = TestWeights.Random(config, seed: 162);
        var fused = new GraphOptions { Flavor = GraphFlavor.Fused };
        var int4 = fused with { Quantization = WeightQuantization.Int4 };
        Load("portable", same, new GraphOptions());
        Load("fused", same, fused);
        Load("int4", same, int4);
        Load("other-fused", other, fused);
        Load("other-portable", other, new GraphOptions());

        // The float16-cache flavours need a head size that is a multiple of 16: their own weights, the same vocabulary.
        var halves = TestWeights.Random(TestWeights.Small(heads: 2, width: 32) with { ContextLength = 64 }, seed: 165);
        Load("fused-kv16", halves, fused with { Float16Cache = true });
        Load("int4-kv16", halves, int4 with { Float16Cache = true });

        // A vocabulary of 8 with flatter logits, for the chi-square tests.
        var small = TestWeights.Small(heads: 4, width: 32) with { VocabSize = 8, ContextLength = 32 };
        Load("v8", TestWeights.Random(small, seed: 163, scale: 0.12), fused);
        Load("v8-draft", TestWeights.Random(small, seed: 164, scale: 0.12), fused);

        static void Load(string name, OnnxGpt.Exporter.Model.GptWeights weights, GraphOptions graph) =>
            s_models[name] = GptModel.Load(TestModels.Export(weights, s_tmp!, name, new ExportOptions { Graph = graph }));
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        foreach (var model in s_models.Values)
        {
            model.Dispose();
        }

        s_tmp?.Dispose();
    }

    [TestMethod]
    [DataRow("portable", "int4", 0, 0)]
    [DataRow("portable", "other-portable", 0, 4)]
    [DataRow("portable", null, 3, 0)]
    [DataRow("fused", "int4", 0, 0)]
    [DataRow("fused", "int4", 0, 5)]
    [DataRow("fused", "other-fused", 0, 3)]
    [DataRow("fused", null, 2, 0)]
    [DataRow("fused", "other-fused", 2, 4)]
    [DataRow("int4", "fused", 0, 4)]
    [DataRow("int4", "other-fused", 0, 2)]
    [DataRow("int4", null, 3, 6)]
    [DataRow("fused-kv16", "int4-kv16", 0, 4)]
    [DataRow("fused-kv16", null, 2, 0)]
    [DataRow("int4-kv16", "fused-kv16", 0, 3)]
    [DataRow("int4-kv16", null, 3, 6)]
    public void GreedyOutputIsPlainGreedyTokenForToken(string target, string? draft, int lookup, int k)
    {
        var model = s_models[target];
        var speculation = new SpeculativeDecoding { DraftModel = draft is null ? null : s_models[draft], PromptLookup = lookup, DraftTokens = k };
        var plain = Run(model, Greedy);
        using var generator = model.CreateGenerator(Greedy with { Speculation = speculation });
        generator.Append(Prompt);
        var result = generator.GenerateAll()[0];

        CollectionAssert.AreEqual(plain.Ids.ToArray(), result.Ids.ToArray(),
            $"speculative: {string.Join(",", result.NewIds)}\nplain:       {string.Join(",", plain.NewIds)}");
        Assert.AreEqual(plain.FinishReason, result.FinishReason);
        var stats = generator.Speculation!.Value;
        TestContext.WriteLine($"{target} with {draft ?? "lookup"}: {stats}, acceptance {stats.AcceptanceRate:F2}");
        Assert.IsGreaterThan(0L, stats.Rounds, "no verifying step ran: the test would not test speculation");
        if (draft is "other-fused" or "other-portable")
        {
            Assert.IsLessThan(stats.DraftedTokens, stats.AcceptedTokens, "a draft with other weights should be refused sometimes (the rejection path)");
        }
        else
        {
            Assert.IsGreaterThan(0L, stats.AcceptedTokens, "a draft of the same weights (or a lookup of a cycling text) should be accepted sometimes");
        }

        // Every token is accounted for: the prompt's first, one per plain step, and per verifying step its accepted
        // drafts and the one the model picked itself.
        Assert.AreEqual((long)result.NewTokens, 1 + stats.PlainSteps + stats.Rounds + stats.AcceptedTokens, $"{stats}");
    }

    [TestMethod]
    [DataRow("fused")]
    [DataRow("portable")]
    public void StopsLandWhereTheyDoWithoutSpeculation(string target)
    {
        var model = s_models[target];
        var plainFree = Run(model, Greedy);
        var speculation = new SpeculativeDecoding { DraftModel = s_models["int4"], PromptLookup = 2, DraftTokens = 6 };

        // A stop token the plain run meets at its 9th token, then a budget that ends inside a verified draft.
        int stop = plainFree.NewIds[8];
        foreach (var options in new[] { Greedy with { StopTokenIds = [stop] }, Greedy with { MaxNewTokens = 11 }, Greedy with { MaxNewTokens = 1 } })
        {
            var plain = Run(model, options);
            var spec = Run(model, options with { Speculation = speculation });
            CollectionAssert.AreEqual(plain.Ids.ToArray(), spec.Ids.ToArray(), $"stop tokens [{string.Join(",", options.StopTokenIds)}], max {options.MaxNewTokens}");
            Assert.AreEqual(plain.FinishReason, spec.FinishReason);
        }
    }

    [TestMethod]
    public void RewindAndAppendMidwayKeepThePlainSequence()
    {
        var model = s_models["fused"];
        var options = Greedy with { MaxNewTokens = 30 };
        var speculative = options with { Speculation = new SpeculativeDecoding { DraftModel = s_models["int4"], DraftTokens = 5 } };
        using var plain = model.CreateGenerator(options);
        using var spec = model.CreateGenerator(speculative);
        foreach (var g in new[] { plain, spec })
        {
            g.Append(Prompt);
            for (int i = 0; i < 9; i++)
            {
                g.GenerateNextToken();   // stops inside a verified run of tokens, some picked and not handed out
            }

            g.RewindTo(g.Length - 3);
            g.Append([11, 12]);
            for (int i = 0; i < 7; i++)
            {
                g.GenerateNextToken();
            }

            g.RewindTo(Prompt.Length + 2);
            g.GenerateAll();
        }

        CollectionAssert.AreEqual(plain.GetSequence(0).ToArray(), spec.GetSequence(0).ToArray());
        // The logits after the last token, over the cache speculation kept (written by steps of several tokens), are
        // those over the plain cache, to rounding.
        var expected = plain.GetNextTokenLogits(0).ToArray();
        var actual = spec.GetNextTokenLogits(0).ToArray();
        float worst = expected.Zip(actual, (x, y) => MathF.Abs(x - y)).Max();
        Assert.IsLessThanOrEqualTo(1e-4f, worst, $"the logits differ by {worst} from the plain cache's");
    }

    [TestMethod]
    public void AConstrainedSequenceGetsItsPlainTokensAndStaysInTheGrammar()
    {
        // The shipped Shakespeare model under a grammar: the mask applies at every verified position, the constraint
        // moves on with each picked token and back when the draft is withdrawn, and the sequence ends where it must.
        using var model = GptModel.Load(Path.Combine(TestPaths.RepoRoot, "models", "shakespeare-char"));
        var grammar = OutputConstraint.FromGrammar("""
            root ::= speaker ":\n" line ("\n" line)?
            speaker ::= "ROMEO" | "JULIET"
            line ::= [A-Z] [a-z ,']{3,40} [.!?]
            """);
        var speculation = new SpeculativeDecoding { PromptLookup = 3, DraftTokens = 6 };
        foreach (var options in new[]
        {
            new GenerationOptions { DoSample = false, MaxNewTokens = 100, Constraint = grammar },
            new GenerationOptions { Temperature = 0.8, Seed = 3, MaxNewTokens = 100, Constraint = grammar },
        })
        {
            var results = new List<GenerationResult>();
            long rounds = 0;
            foreach (var o in new[] { options, options with { Speculation = speculation } })
            {
                using var generator = model.CreateGenerator(o);
                generator.AppendText("JULIET:\nO Romeo.\n\n");
                results.Add(generator.GenerateAll()[0]);
                rounds = generator.Speculation?.Rounds ?? 0;
            }

            Assert.IsGreaterThan(0L, rounds, "no verifying step ran");
            StringAssert.Matches(results[1].Text, new System.Text.RegularExpressions.Regex(@"^(ROMEO|JULIET):\n[A-Z][a-z ,']{3,40}[.!?](\n[A-Z][a-z ,']{3,40}[.!?])?$"));
            Assert.IsTrue(results[1].ConstraintComplete, $"{results[1].FinishReason}");
            if (options.IsGreedy)
            {
                CollectionAssert.AreEqual(results[0].Ids.ToArray(), results[1].Ids.ToArray(), $"plain: {results[0].Text}\nspeculative: {results[1].Text}");
                Assert.AreEqual(results[0].FinishReason, results[1].FinishReason);
            }
        }
    }

    [TestMethod]
    public void LogProbabilitiesBeamsAndSeveralSequencesDecodePlainly()
    {
        // Those are recorded by the plain loop: a request asking for them gets its plain result, and no verifying step.
        var model = s_models["fused"];
        var speculation = new SpeculativeDecoding { DraftModel = s_models["int4"], PromptLookup = 2 };
        foreach (var options in new[] { Greedy with { TopLogProbs = 2 }, Greedy with { NumBeams = 2 }, Greedy with { DoSample = true, Seed = 5, NumReturnSequences = 2 } })
        {
            var plain = Run(model, options);
            using var generator = model.CreateGenerator(options with { Speculation = speculation });
            generator.Append(Prompt);
            var result = generator.GenerateAll()[0];
            CollectionAssert.AreEqual(plain.Ids.ToArray(), result.Ids.ToArray(), $"{options}");
            Assert.AreEqual(plain.LogProbs?.Count, result.LogProbs?.Count);
            Assert.AreEqual(0L, generator.Speculation?.Rounds ?? 0, "no verifying step should have run");
        }
    }

    [TestMethod]
    public void ABatchOfRowsIsRefusedWithTheReason()
    {
        var model = s_models["fused"];
        using var generator = model.CreateGenerator(Greedy with { Speculation = new SpeculativeDecoding { PromptLookup = 2 } });
        var e = Assert.ThrowsExactly<OnnxGptException>(() => generator.AppendBatch([[1, 2], [3, 4]]));
        StringAssert.Contains(e.Message, "single sequence");
        StringAssert.Contains(e.Message, "BatchEngine");
    }

    [TestMethod]
    public void ADraftWithAnotherVocabularyIsRefused()
    {
        using var generator = s_models["fused"].CreateGenerator(Greedy with { MaxNewTokens = 4, Speculation = new SpeculativeDecoding { DraftModel = s_models["v8"] } });
        generator.Append(Prompt);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => generator.GenerateAll());
        StringAssert.Contains(e.Message, "8 tokens");
        StringAssert.Contains(e.Message, "53");
    }

    [TestMethod]
    public void OptionsOutOfRangeAreRefused()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => (Greedy with { Speculation = new SpeculativeDecoding { DraftTokens = 16 } }).Validate());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => (Greedy with { Speculation = new SpeculativeDecoding { PromptLookup = -1 } }).Validate());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => (Greedy with { Speculation = new SpeculativeDecoding { MaxDraftTokens = 0 } }).Validate());
    }

    [TestMethod]
    public async Task InTheBatchEngineARequestGetsItsPlainTokensAloneAndBesideOthers()
    {
        var model = s_models["fused"];
        // A fixed k: the adaptive choice weighs measured step times, so under a loaded machine it may rightly decode
        // plainly for a while, and the step count below would then depend on the machine's load, not on the engine.
        var speculation = new SpeculativeDecoding { DraftModel = s_models["int4"], PromptLookup = 2, DraftTokens = 4 };
        var options = Greedy with { MaxNewTokens = 40, Speculation = speculation };
        var expected = Run(model, Greedy).NewIds.ToArray();
        using var engine = BatchEngine.Start(model, new BatchEngineOptions { Slots = 3, MaxIdleConversations = 0 });

        // Alone it speculates: fewer steps than tokens.
        var alone = await BatchEngineTests.Read(engine.Submit(Prompt, options, cancellationToken: TestContext.CancellationToken));
        CollectionAssert.AreEqual(expected, alone);
        var stats = engine.GetStatistics();
        Assert.IsLessThan((long)expected.Length - 5, stats.Steps, $"alone, the request should have verified several tokens per step ({stats.Steps} steps for {expected.Length} tokens)");

        // Beside others (one slow, so they overlap) it decodes in the shared step, speculating again when alone.
        var other = engine.Submit([30, 31], Greedy with { MaxNewTokens = 12 }, (_, _) => Thread.Sleep(1), TestContext.CancellationToken);
        var third = engine.Submit([8, 41, 2], options with { MaxNewTokens = 20 }, cancellationToken: TestContext.CancellationToken);
        var mine = engine.Submit(Prompt, options, cancellationToken: TestContext.CancellationToken);
        CollectionAssert.AreEqual(expected, await BatchEngineTests.Read(mine));
        CollectionAssert.AreEqual(Run(model, Greedy with { MaxNewTokens = 12 }, [30, 31]).NewIds.ToArray(), await BatchEngineTests.Read(other));
        CollectionAssert.AreEqual(Run(model, Greedy with { MaxNewTokens = 20 }, [8, 41, 2]).NewIds.ToArray(), await BatchEngineTests.Read(third));
    }

    [TestMethod]
    [DataRow("model")]
    [DataRow("lookup")]
    public void SampledFirstTokenHasThePlainDistribution(string draft)
    {
        // The first token after the prompt, picked by the accept/reject step of a verifying step (the prompt's last
        // token and 3 draft tokens are fed together), over many seeds, against the model's own distribution computed
        // here from its logits; plain sampling is held to the same test.
        const int draws = 4000;
        const double temperature = 0.9;
        var model = s_models["v8"];
        int[] prompt = [3, 1, 4, 1, 5, 1];   // lookup proposes what followed "1" last time: 5, 1, 5, ...
        var sampling = new GenerationOptions { DoSample = true, Temperature = temperature, TopK = 0, MaxNewTokens = 4 };
        var speculation = draft == "model"
            ? new SpeculativeDecoding { DraftModel = s_models["v8-draft"], DraftTokens = 3 }
            : new SpeculativeDecoding { PromptLookup = 1, DraftTokens = 3 };

        double[] expected;
        using (var probe = model.CreateGenerator(sampling))
        {
            probe.Append(prompt);
            expected = Softmax(probe.GetNextTokenLogits(0), temperature);
        }

        var plainCounts = new int[8];
        var specCounts = new int[8];
        long rounds = 0, drafted = 0, accepted = 0;
        using var plain = model.CreateGenerator(sampling);
        using var spec = model.CreateGenerator(sampling with { Speculation = speculation });
        plain.Append(prompt);
        spec.Append(prompt);
        spec.GenerateNextToken();   // feeds the prompt; from now on each rewind leaves its last token pending
        for (int seed = 0; seed < draws; seed++)
        {
            plain.RewindTo(prompt.Length);
            plain.SetOptions(sampling with { Seed = (ulong)seed });
            plain.GenerateNextToken();
            plainCounts[plain.LastTokens[0]]++;

            spec.RewindTo(prompt.Length);
            spec.SetOptions(sampling with { Seed = (ulong)seed, Speculation = speculation });
            spec.GenerateNextToken();
            specCounts[spec.LastTokens[0]]++;
            var stats = spec.Speculation!.Value;
            (rounds, drafted, accepted) = (rounds + stats.Rounds, drafted + stats.DraftedTokens, accepted + stats.AcceptedTokens);
        }

        Assert.AreEqual(draws, rounds, "every first token should come from a verifying step");
        Assert.IsLessThan(drafted, accepted, "some drafts must be rejected, or the residual draw is not tested");
        Assert.IsGreaterThan((long)draws / 20, accepted, "some drafts must be accepted");
        TestContext.WriteLine($"expected {string.Join(" ", expected.Select(p => p.ToString("F3")))}");
        TestContext.WriteLine($"plain    {string.Join(" ", plainCounts)}\nspec     {string.Join(" ", specCounts)}; accepted {accepted} of {drafted} drafted");
        AssertFits(expected, plainCounts, "plain sampling");
        AssertFits(expected, specCounts, $"speculative sampling with the {draft} draft");
    }

    [TestMethod]
    public void VerifyKeepsTheTargetDistributionForAnyDraftDistribution()
    {
        // The accept/reject step alone, on 6 tokens with top-k 5 (one token impossible), against drafts that are
        // uniform, skewed, certain, and put mass where the target has none.
        const int draws = 20000;
        float[] logits = [1.2f, -0.3f, 0.4f, 2.0f, -1.5f, 0.9f];
        var options = new GenerationOptions { Temperature = 0.8, TopK = 5 };
        double[] expected = Softmax(logits, 0.8);
        expected[4] = 0;   // the 6th largest is left out by top-k
        double sum = expected.Sum();
        expected = expected.Select(p => p / sum).ToArray();
        double[][] drafts = [[1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0], [0.05, 0.6, 0.05, 0.05, 0.2, 0.05], []];
        foreach (var q in drafts)
        {
            var sampler = new Sampler(options with { Seed = 7 });
            var draftRandom = new DeterministicRandom(8);
            var counts = new int[6];
            var scratch = new float[Sampler.ScratchLength(6)];
            var p = new float[6];
            var qf = q.Select(x => (float)x).ToArray();
            for (int i = 0; i < draws; i++)
            {
                int token = q.Length == 0 ? 1 : DrawFrom(q, draftRandom.NextDouble());   // the empty draft is certain of token 1
                counts[sampler.Verify(logits, [], 0, scratch, token, qf, p)]++;
            }

            AssertFits(expected, counts, $"draft q = [{string.Join(", ", q)}]");
        }
    }

    [TestMethod]
    public void PromptLookupProposesWhatFollowedTheLatestMatch()
    {
        var lookup = new PromptLookupDrafter(3);
        var draft = new int[6];
        Assert.AreEqual(0, lookup.Propose([1, 2, 3, 4], 4, draft), "no earlier occurrence of any suffix");
        Assert.AreEqual(3, lookup.Propose([7, 8, 9, 1, 7, 8, 9, 2, 7, 8], 3, draft));
        CollectionAssert.AreEqual(new[] { 9, 2, 7 }, draft[..3], "the latest match of [7, 8] is followed by 9, 2, 7");
        Assert.AreEqual(6, lookup.Propose([5, 1, 2, 1, 2], 6, draft));
        CollectionAssert.AreEqual(new[] { 1, 2, 1, 2, 1, 2 }, draft, "a repeat runs on past the sequence's end");
        Assert.AreEqual(2, lookup.Propose([4, 6, 9, 4, 6, 8, 6], 2, draft));
        CollectionAssert.AreEqual(new[] { 8, 6 }, draft[..2], "[6] alone matches, at its latest occurrence");
    }

    private static GenerationResult Run(GptModel model, GenerationOptions options, int[]? prompt = null)
    {
        using var generator = model.CreateGenerator(options);
        generator.Append(prompt ?? Prompt);
        return generator.GenerateAll()[0];
    }

    private static double[] Softmax(ReadOnlySpan<float> logits, double temperature)
    {
        double max = double.NegativeInfinity;
        foreach (var x in logits)
        {
            max = Math.Max(max, x);
        }

        var p = new double[logits.Length];
        for (int i = 0; i < p.Length; i++)
        {
            p[i] = Math.Exp((logits[i] - max) / temperature);
        }

        double sum = p.Sum();
        return p.Select(x => x / sum).ToArray();
    }

    private static int DrawFrom(double[] q, double u)
    {
        double sum = 0;
        for (int i = 0; i < q.Length; i++)
        {
            sum += q[i];
            if (u * 1.0 < sum)
            {
                return i;
            }
        }

        return q.Length - 1;
    }

    /// <summary>
    /// Pearson's chi-square of <paramref name="counts"/> against <paramref name="expected"/> probabilities, cells
    /// expected under 5 draws pooled, against the 0.1 % critical value (Wilson–Hilferty): a correct sampler fails one
    /// run in a thousand; the seeds are fixed, so a run that passes always passes. A token of probability 0 drawn fails.
    /// </summary>
    private static void AssertFits(double[] expected, int[] counts, string what)
    {
        int n = counts.Sum();
        double chi = 0, pooledExpected = 0, pooledCount = 0;
        int cells = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] == 0)
            {
                Assert.AreEqual(0, counts[i], $"{what}: token {i} has probability 0 but was drawn {counts[i]} times");
                continue;
            }

            double e = expected[i] * n;
            if (e < 5)
            {
                (pooledExpected, pooledCount) = (pooledExpected + e, pooledCount + counts[i]);
                continue;
            }

            chi += (counts[i] - e) * (counts[i] - e) / e;
            cells++;
        }

        if (pooledExpected > 0)
        {
            chi += (pooledCount - pooledExpected) * (pooledCount - pooledExpected) / pooledExpected;
            cells++;
        }

        int df = cells - 1;
        Assert.IsGreaterThan(0, df, $"{what}: too few cells for a test");
        const double z = 3.0902;   // the 99.9th percentile of the standard normal
        double h = 2.0 / (9 * df);
        double critical = df * Math.Pow(1 - h + z * Math.Sqrt(h), 3);
        Assert.IsLessThan(critical, chi, $"{what}: chi-square {chi:F2} with {df} degrees of freedom is above {critical:F2}; counts {string.Join(" ", counts)}");
    }
}

using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Constraints;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>Several sampled sequences per prompt (OpenAI's n), the prompt run once; and the recorded log-probabilities.</summary>
[TestClass]
public sealed class SequencesPerPromptTests
{
    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void EachRowIsTheSameRunAloneWithItsOwnSeedAndThePromptRunsOnce(bool fused)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: fused ? 32 : 16), seed: 61);
        using var tmp = TestPaths.NewTemp();
        var export = fused ? new ExportOptions { Graph = new GraphOptions { Flavor = GraphFlavor.Fused } } : null;
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: export));
        int[][] prompts = [[5, 17, 3, 52, 9, 1, 1], [8, 41]];
        var options = new GenerationOptions { Seed = 7, NumReturnSequences = 3, MaxNewTokens = 6, Temperature = 1.3, TopK = 0 };
        using var generator = model.CreateGenerator(options);
        generator.AppendBatch(prompts);
        var results = generator.GenerateAll();
        Assert.AreEqual(6, results.Count);

        long promptPositions = generator.FedPositions - results.Sum(r => r.NewTokens - 1);
        Assert.AreEqual(prompts.Sum(p => p.Length), promptPositions, "each prompt is fed once, then one position per generated token after the first");
        Assert.AreEqual(2L * prompts.Sum(p => p.Length), generator.CopiedCachePositions, "each prompt's cache is copied into its two other rows once, nothing after");
        var distinct = new HashSet<string>();
        for (int r = 0; r < results.Count; r++)
        {
            int p = r / 3;
            Assert.AreEqual(p, results[r].Prompt);
            using var alone = model.CreateGenerator(options with { NumReturnSequences = 1, Seed = 7 + (ulong)r });
            alone.Append(prompts[p]);
            CollectionAssert.AreEqual(alone.GenerateAll()[0].Ids.ToArray(), results[r].Ids.ToArray(), $"row {r} = prompt {p} alone with seed 7 + {r}");
            distinct.Add(string.Join(",", results[r].NewIds));
        }

        Assert.IsGreaterThan(2, distinct.Count, "test setup: the rows sample different continuations");
    }

    [TestMethod]
    [DataRow(true, false)]
    [DataRow(false, false)]
    [DataRow(true, true)]
    public void RecordedLogProbsAreTheReferencesLogSoftmax(bool fused, bool greedy)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: fused ? 32 : 16), seed: 62);
        using var tmp = TestPaths.NewTemp();
        var export = fused ? new ExportOptions { Graph = new GraphOptions { Flavor = GraphFlavor.Fused } } : null;
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: export));
        int[] prompt = [2, 7, 1, 8];
        var options = new GenerationOptions { Seed = 3, MaxNewTokens = 8, DoSample = !greedy, TopLogProbs = 5, PresencePenalty = 0.7, Temperature = 0.9, TopK = 0 };
        using var generator = model.CreateGenerator(options);
        generator.Append(prompt);
        var streamed = generator.StreamAsync().ToBlockingEnumerable().ToList();
        var result = generator.Results()[0];
        Assert.IsNotNull(result.LogProbs);
        Assert.AreEqual(result.NewTokens, result.LogProbs.Count);
        for (int i = 0; i < result.NewTokens; i++)
        {
            var lp = result.LogProbs[i];
            Assert.AreSame(lp, streamed[i].LogProbs, "the streamed token carries the same record");
            var reference = ReferenceDecoding.LogSoftmax(ReferenceDecoding.NextLogits(weights, result.Ids.Take(prompt.Length + i).ToList()));
            Assert.AreEqual(result.NewIds[i], lp.TokenId);
            Assert.AreEqual(reference[lp.TokenId], lp.LogProb, 1e-4, $"token {i}: raw log-probability");
            var top = reference.Select((x, id) => (x, id)).OrderByDescending(t => t.x).Take(5).ToArray();
            CollectionAssert.AreEqual(top.Select(t => t.id).ToArray(), lp.Top.Select(t => t.TokenId).ToArray(), $"token {i}: the top 5");
            for (int k = 0; k < 5; k++)
            {
                Assert.AreEqual(top[k].x, lp.Top[k].LogProb, 1e-4, $"token {i}: top {k}");
            }

            // The processed log-probability: the penalised distribution at the temperature (greedy: at 1).
            var processed = ReferenceDecoding.Process(ReferenceDecoding.NextLogits(weights, result.Ids.Take(prompt.Length + i).ToList()),
                result.Ids.Take(prompt.Length + i).ToList(), prompt.Length, options);
            var scaled = ReferenceDecoding.LogSoftmax([.. processed.Select(x => greedy ? x : x / options.Temperature)]);
            Assert.AreEqual(scaled[lp.TokenId], lp.ProcessedLogProb, 1e-4, $"token {i}: processed log-probability");
        }
    }

    [TestMethod]
    public void LogProbsAfterAConstraintIsClearedAreThisStepsRawOnes()
    {
        // A row constrained for its first tokens, then free: the raw logits it reports must be each step's own, not a
        // copy left over from the last constrained step.
        var weights = HfCheckpoint.Load(TestPaths.TinyRandomGpt2);
        using var tmp = new TempFolder();
        using var model = GptModel.Load(ChatModels.ExportTinyGpt2(tmp));
        var options = new GenerationOptions { DoSample = false, MaxNewTokens = 6, TopLogProbs = 3 };
        using var generator = model.CreateGenerator(options);
        generator.AppendText("Hello there");
        int prompt = generator.Length;
        generator.SetConstraint(0, OutputConstraint.FromGrammar("root ::= [a-z ]+"));
        generator.GenerateNextToken();
        generator.GenerateNextToken();
        generator.SetConstraint(0, null);
        while (!generator.IsDone)
        {
            generator.GenerateNextToken();
        }

        var ids = generator.GetSequence(0).ToArray();
        var logProbs = generator.GetLogProbs(0)!;
        Assert.AreEqual(6, logProbs.Count);
        for (int i = 0; i < logProbs.Count; i++)
        {
            var reference = ReferenceDecoding.LogSoftmax(ReferenceDecoding.NextLogits(weights, ids.Take(prompt + i).ToList()));
            Assert.AreEqual(ids[prompt + i], logProbs[i].TokenId);
            Assert.AreEqual(reference[logProbs[i].TokenId], logProbs[i].LogProb, 1e-4, $"token {i}: raw log-probability");
            int best = Array.IndexOf(reference, reference.Max());
            Assert.AreEqual(best, logProbs[i].Top[0].TokenId, $"token {i}: the raw distribution's most likely token");
        }
    }

    [TestMethod]
    public void EachSampledRowFollowsTheConstraintWithItsOwnStateAsItsSoloRun()
    {
        // n rows forked from one constrained prompt: each row has its own constraint state (masked before its draw,
        // advanced by its own tokens), and gives what the prompt alone gives with that row's seed.
        using var tmp = new TempFolder();
        using var model = GptModel.Load(ChatModels.ExportTinyGpt2(tmp));
        var constraint = OutputConstraint.FromGrammar("""root ::= ("yes" | "no" | "maybe") ", " [a-z]{1,4} "." """);
        var options = new GenerationOptions { Seed = 21, NumReturnSequences = 4, MaxNewTokens = 16, Temperature = 1.2, TopK = 0, Constraint = constraint };
        using var generator = model.CreateGenerator(options);
        generator.AppendText("The answer is");
        var results = generator.GenerateAll();
        Assert.HasCount(4, results);
        var pattern = new System.Text.RegularExpressions.Regex("^(yes|no|maybe), [a-z]{1,4}\\.$");
        for (int r = 0; r < 4; r++)
        {
            StringAssert.Matches(results[r].Text, pattern, $"row {r}");
            Assert.IsTrue(results[r].ConstraintComplete, $"row {r}");
            using var alone = model.CreateGenerator(options with { NumReturnSequences = 1, Seed = 21 + (ulong)r });
            alone.AppendText("The answer is");
            CollectionAssert.AreEqual(alone.GenerateAll()[0].NewIds.ToArray(), results[r].NewIds.ToArray(), $"row {r} = the prompt alone with seed 21 + {r}");
        }

        Assert.IsGreaterThan(1, results.Select(r => r.Text).Distinct().Count(), "test setup: the rows sample different answers");
    }
}

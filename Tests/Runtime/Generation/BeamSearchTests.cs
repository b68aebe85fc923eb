using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Constraints;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>Beam search against a plain beam search over the reference forward pass (no cache): tokens equal, scores within 1e-5.</summary>
[TestClass]
public sealed class BeamSearchTests
{
    private const double ScoreTolerance = 1e-5;
    private static readonly ExportOptions Fused = new() { Graph = new GraphOptions { Flavor = GraphFlavor.Fused } };

    [TestMethod]
    [DataRow(21, false, 3, 1.0, BeamEarlyStopping.Heuristic, 3, false, DisplayName = "portable, 3 beams, heuristic")]
    [DataRow(22, true, 4, 1.0, BeamEarlyStopping.Heuristic, 2, false, DisplayName = "fused, 4 beams, heuristic")]
    [DataRow(23, true, 3, 2.0, BeamEarlyStopping.Never, 3, true, DisplayName = "fused, length penalty 2, never, stop token")]
    [DataRow(24, false, 4, 0.5, BeamEarlyStopping.Early, 4, true, DisplayName = "portable, length penalty 0.5, early, stop token")]
    [DataRow(25, true, 2, -1.0, BeamEarlyStopping.Heuristic, 1, true, DisplayName = "fused, negative length penalty, stop token")]
    [DataRow(26, true, 5, 1.0, BeamEarlyStopping.Never, 5, true, DisplayName = "fused, 5 beams, never, stop token")]
    public void BatchOfUnequalPromptsEqualsReferenceBeamSearch(int seed, bool fused, int beams, double lengthPenalty, BeamEarlyStopping stopping,
        int returned, bool stopToken)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: fused ? 32 : 16, layers: seed % 2 + 1), seed: (ulong)seed);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: fused ? Fused : null));
        int[][] prompts = [[5, 17, 3, 52, 9], [8, 41], [30, 2, 2]];
        // A stop token the search meets: the second token greedy decoding picks after the first prompt.
        int[] stops = stopToken ? [TestModels.ReferenceGreedy(weights, prompts[0], 2)[1]] : [];
        var options = new GenerationOptions
        {
            NumBeams = beams, NumReturnSequences = returned, LengthPenalty = lengthPenalty, EarlyStopping = stopping,
            MaxNewTokens = 7, StopTokenIds = stops,
        };
        using var generator = model.CreateGenerator(options);
        generator.AppendBatch(prompts);
        var results = generator.GenerateAll();

        Assert.AreEqual(prompts.Length * returned, results.Count);
        if (stopToken)
        {
            Assert.IsTrue(results.Any(r => r.FinishReason == FinishReason.StopToken), "test setup: some hypothesis ends with the stop token");
        }

        for (int p = 0; p < prompts.Length; p++)
        {
            var expected = ReferenceDecoding.BeamSearch(weights, prompts[p], options, stops);
            Assert.AreEqual(returned, expected.Count, "test setup: the reference returns as many");
            for (int j = 0; j < returned; j++)
            {
                var got = results[p * returned + j];
                Assert.AreEqual(p, got.Prompt);
                Assert.AreEqual(p * returned + j, got.Row);
                CollectionAssert.AreEqual(prompts[p], got.Ids.Take(got.PromptLength).ToArray(), $"prompt {p}, rank {j}: the prompt");
                CollectionAssert.AreEqual(expected[j].Tokens, got.NewIds.ToArray(),
                    $"prompt {p}, rank {j}: expected [{string.Join(",", expected[j].Tokens)}] ({expected[j].Score:F6}), got [{string.Join(",", got.NewIds)}] ({got.Score:F6})");
                Assert.IsNotNull(got.Score);
                AssertScore(expected[j], got, lengthPenalty, $"prompt {p}, rank {j}");
                Assert.AreEqual(expected[j].Ended ? FinishReason.StopToken : FinishReason.MaxNewTokens, got.FinishReason, $"prompt {p}, rank {j}");
                if (j > 0)
                {
                    Assert.IsGreaterThanOrEqualTo(got.Score.Value, results[p * returned + j - 1].Score!.Value, "best first");
                }
            }
        }
    }

    [TestMethod]
    [DataRow(27, true, 4, 1.0, BeamEarlyStopping.Heuristic, DisplayName = "fused, transformers' current lengths, heuristic")]
    [DataRow(28, false, 3, 2.0, BeamEarlyStopping.Never, DisplayName = "portable, transformers' current lengths, length penalty 2, never")]
    [DataRow(29, true, 3, -0.5, BeamEarlyStopping.Never, DisplayName = "fused, transformers' current lengths, negative length penalty, never")]
    public void GeneratedLengthsEqualTheReferenceAndDifferFromTheLegacyOnes(int seed, bool fused, int beams, double lengthPenalty, BeamEarlyStopping stopping)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: fused ? 32 : 16, layers: 1), seed: (ulong)seed);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: fused ? Fused : null));
        int[][] prompts = [[5, 17, 3, 52, 9, 11, 30, 2, 2, 7, 40, 1], [8, 41]];
        int[] stops = [TestModels.ReferenceGreedy(weights, prompts[0], 2)[1], TestModels.ReferenceGreedy(weights, prompts[1], 3)[2]];
        var options = new GenerationOptions
        {
            NumBeams = beams, NumReturnSequences = beams, LengthPenalty = lengthPenalty, EarlyStopping = stopping, MaxNewTokens = 7,
            StopTokenIds = stops, BeamLength = BeamLength.Generated,
        };
        using var generator = model.CreateGenerator(options);
        generator.AppendBatch(prompts);
        var results = generator.GenerateAll();
        bool differs = false;
        for (int p = 0; p < prompts.Length; p++)
        {
            var expected = ReferenceDecoding.BeamSearch(weights, prompts[p], options, stops);
            var legacy = ReferenceDecoding.BeamSearch(weights, prompts[p], options with { BeamLength = BeamLength.WithPrompt }, stops);
            differs |= !expected.Select(h => h.Score).SequenceEqual(legacy.Select(h => h.Score));
            var mine = results.Where(r => r.Prompt == p).ToList();
            Assert.AreEqual(expected.Count, mine.Count, $"prompt {p}");
            for (int j = 0; j < mine.Count; j++)
            {
                CollectionAssert.AreEqual(expected[j].Tokens, mine[j].NewIds.ToArray(),
                    $"prompt {p}, rank {j}: expected [{string.Join(",", expected[j].Tokens)}] ({expected[j].Score:F6}), got [{string.Join(",", mine[j].NewIds)}] ({mine[j].Score:F6})");
                // The score divides by the generated tokens (an ended hypothesis counting its end token).
                double scale = Math.Pow(mine[j].NewTokens, lengthPenalty);
                Assert.AreEqual(expected[j].Score * scale, mine[j].Score!.Value * scale, ScoreTolerance, $"prompt {p}, rank {j}: summed log-probability");
                Assert.AreEqual(expected[j].Score, mine[j].Score!.Value, ScoreTolerance * Math.Max(1, 1 / scale), $"prompt {p}, rank {j}: score");
            }
        }

        Assert.IsTrue(differs, "test setup: the two conventions score these hypotheses differently");
        Assert.IsTrue(results.Any(r => r.FinishReason == FinishReason.StopToken), "test setup: some hypothesis ends with a stop token");
    }

    [TestMethod]
    [DataRow(31, true)]
    [DataRow(32, false)]
    public void PenaltiesAndNgramBanApplyToBeamsAsToTheReference(int seed, bool fused)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: fused ? 32 : 16), seed: (ulong)seed);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: fused ? Fused : null));
        int[] prompt = [4, 9, 4, 9, 4];
        var options = new GenerationOptions
        {
            NumBeams = 3, NumReturnSequences = 3, MaxNewTokens = 8, RepetitionPenalty = 1.7, NoRepeatNgramSize = 2,
            PresencePenalty = 0.4, FrequencyPenalty = 0.3, LogitBias = new Dictionary<int, double> { [7] = 2.5, [9] = -100 },
        };
        using var generator = model.CreateGenerator(options);
        generator.Append(prompt);
        var results = generator.GenerateAll();
        var expected = ReferenceDecoding.BeamSearch(weights, prompt, options, []);
        for (int j = 0; j < 3; j++)
        {
            CollectionAssert.AreEqual(expected[j].Tokens, results[j].NewIds.ToArray(), $"rank {j}");
            AssertScore(expected[j], results[j], options.LengthPenalty, $"rank {j}");
            Assert.IsFalse(results[j].NewIds.Contains(9), "bias -100 bans the token");
            var all = results[j].Ids;
            for (int i = 0; i + 2 < all.Count; i++)
            {
                for (int k = i + 1; k + 1 < all.Count; k++)
                {
                    Assert.IsFalse(all[i] == all[k] && all[i + 1] == all[k + 1] && k + 1 >= prompt.Length,
                        $"rank {j}: the bigram ({all[i]}, {all[i + 1]}) repeats at {k}");
                }
            }
        }
    }

    /// <summary>
    /// The summed log-probability within 1e-5, and the score (that sum divided by length ^ penalty) within 1e-5 of
    /// the sum's scale: a negative penalty multiplies the sum, and its rounding, by the length.
    /// </summary>
    private static void AssertScore(ReferenceDecoding.Hypothesis expected, GenerationResult got, double lengthPenalty, string what)
    {
        int length = got.Ids.Count - (expected.Ended ? 1 : 0);
        double scale = Math.Pow(length, lengthPenalty);
        Assert.AreEqual(expected.Score * scale, got.Score!.Value * scale, ScoreTolerance, $"{what}: summed log-probability");
        Assert.AreEqual(expected.Score, got.Score!.Value, ScoreTolerance * Math.Max(1, 1 / scale), $"{what}: score");
    }

    [TestMethod]
    public void OneBeamPerPromptLeftAloneCopiesNothingAndTheCacheFollowsTheBeams()
    {
        // Every step's logits of every live beam equal the reference's for that beam's tokens: the copied rows
        // compute what their parents would.
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: 32), seed: 41);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: Fused));
        var options = new GenerationOptions { NumBeams = 4, MaxNewTokens = 6 };
        using var generator = model.CreateGenerator(options);
        generator.Append([3, 1, 4, 1, 5]);
        int steps = 0;
        while (!generator.IsDone)
        {
            generator.GenerateNextToken();
            steps++;
            for (int b = 0; b < 4 && !generator.IsDone; b++)
            {
                var sequence = generator.GetSequence(b).ToArray();
                if (sequence.Length == 0)
                {
                    continue;
                }

                var logits = generator.GetNextTokenLogits(b).ToArray();
                var reference = ReferenceDecoding.NextLogits(weights, sequence);
                double diff = logits.Select((x, i) => Math.Abs(x - reference[i])).Max();
                Assert.IsLessThan(1e-4, diff, $"step {steps}, row {b}: logits differ from the reference by {diff}");
            }
        }

        Assert.IsLessThanOrEqualTo(6, steps);
        // The forks copy only what differs: at least the first step's three copies of the 5-token prompt, far less
        // than three whole rows per step.
        long whole = Enumerable.Range(0, steps).Sum(s => 3L * (5 + s));
        Assert.IsGreaterThanOrEqualTo(15L, generator.CopiedCachePositions);
        Assert.IsLessThan(whole, generator.CopiedCachePositions, $"copied {generator.CopiedCachePositions} positions; whole rows would be {whole}");
    }

    [TestMethod]
    [DataRow(3, 1.0, BeamEarlyStopping.Heuristic, GraphFlavor.Portable, DisplayName = "portable, 3 beams, heuristic")]
    [DataRow(4, 0.5, BeamEarlyStopping.Never, GraphFlavor.Fused, DisplayName = "fused, 4 beams, length penalty 0.5, never")]
    [DataRow(6, 2.0, BeamEarlyStopping.Early, GraphFlavor.Portable, DisplayName = "portable, 6 beams (more than the first step allows), early")]
    public void ConstrainedBeamsEqualTheReferenceUnderTheSameMask(int beams, double lengthPenalty, BeamEarlyStopping stopping, GraphFlavor flavor)
    {
        // tiny-random-gpt2 with its 1000-token BPE: each beam masked by its own constraint state before the candidates
        // are chosen; the reference masks each beam from a fresh state over that beam's tokens.
        var weights = HfCheckpoint.Load(TestPaths.TinyRandomGpt2);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(ChatModels.ExportTinyGpt2(tmp, graph: new GraphOptions { Flavor = flavor }));
        var constraint = OutputConstraint.FromGrammar("""root ::= ("yes" | "no" | "maybe") ", " [a-z]{1,4} "." """);
        var options = new GenerationOptions
        {
            NumBeams = beams, NumReturnSequences = beams, LengthPenalty = lengthPenalty, EarlyStopping = stopping, MaxNewTokens = 12,
            Constraint = constraint,
        };
        using var generator = model.CreateGenerator(options);
        generator.AppendText("The answer is");
        int[] prompt = generator.GetSequence(0).ToArray();
        var results = generator.GenerateAll();

        int eos = model.Config.EosTokenId!.Value;
        var tokenizer = model.Tokenizer!;
        void Mask(int[] generated, double[] scores)
        {
            var state = constraint.Start(tokenizer, [eos]);
            foreach (int token in generated)
            {
                state.Advance(token);
            }

            var probe = new float[scores.Length];
            state.Apply(probe);
            for (int v = 0; v < scores.Length; v++)
            {
                if (float.IsNegativeInfinity(probe[v]))
                {
                    scores[v] = double.NegativeInfinity;
                }
            }
        }

        int firstAllowed = constraint.Start(tokenizer, [eos]).AllowedTokenCount;
        if (beams == 6)
        {
            Assert.IsLessThan(beams, firstAllowed, "test setup: the first step allows fewer tokens than there are beams");
        }

        var expected = ReferenceDecoding.BeamSearch(weights, prompt, options, [eos], Mask);
        Assert.AreEqual(expected.Count, results.Count, "as many hypotheses as the reference");
        Assert.IsTrue(results.Any(r => r.FinishReason == FinishReason.EndOfSequence), "test setup: some beam completes the grammar and ends");
        var pattern = new System.Text.RegularExpressions.Regex("^(yes|no|maybe), [a-z]{1,4}\\.$");
        for (int j = 0; j < results.Count; j++)
        {
            var got = results[j];
            CollectionAssert.AreEqual(expected[j].Tokens, got.NewIds.ToArray(),
                $"rank {j}: expected [{string.Join(",", expected[j].Tokens)}] ({expected[j].Score:F6}), got [{string.Join(",", got.NewIds)}] ({got.Score:F6}) '{got.Text}'");
            AssertScore(expected[j], got, lengthPenalty, $"rank {j}");
            if (got.FinishReason == FinishReason.EndOfSequence)
            {
                StringAssert.Matches(got.Text, pattern, $"rank {j}");
                Assert.IsTrue(got.ConstraintComplete, $"rank {j}");
            }
            else
            {
                Assert.AreEqual(FinishReason.MaxNewTokens, got.FinishReason, $"rank {j}");
                Assert.AreEqual(pattern.IsMatch(got.Text!), got.ConstraintComplete, $"rank {j}: '{got.Text}'");
            }
        }
    }

    [TestMethod]
    public void BeamSearchRefusesWhatItCannotDo()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 42);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new GenerationOptions { NumBeams = 2, NumReturnSequences = 3 }.Validate());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new GenerationOptions { NumBeams = 0 }.Validate());
        var tooMany = Assert.ThrowsExactly<OnnxGptException>(() => model.CreateGenerator(new GenerationOptions { NumBeams = 40 }));
        StringAssert.Contains(tooMany.Message, "vocabulary of 53");
        using var generator = model.CreateGenerator(new GenerationOptions { NumBeams = 2, MaxNewTokens = 3 });
        generator.Append([1, 2]);
        Assert.ThrowsExactly<NotSupportedException>(() => generator.StreamAsync().GetAsyncEnumerator().MoveNextAsync().AsTask().GetAwaiter().GetResult());
        generator.GenerateNextToken();
        Assert.ThrowsExactly<InvalidOperationException>(() => generator.RewindTo(1));
        Assert.ThrowsExactly<InvalidOperationException>(() => generator.Append([3]));
    }
}

using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Tests.Support;
using OnnxGpt.Training;

namespace OnnxGpt.Tests.Training;

[TestClass]
public sealed class TrainerTests
{
    public TestContext TestContext { get; set; } = null!;

    // These models are tiny: forking onto the thread pool costs more than it saves, more so beside other tests.
    [TestInitialize]
    public void SingleThreaded() => Kernels.MaxDegreeOfParallelism = 1;

    [TestCleanup]
    public void AllCores() => Kernels.MaxDegreeOfParallelism = null;

    private static readonly Lazy<string> ShakespeareStart = new(() =>
    {
        var path = TestPaths.TinyShakespeare;
        using var reader = new StreamReader(path);
        var buffer = new char[40_000];
        int read = reader.ReadBlock(buffer, 0, buffer.Length);
        return new string(buffer, 0, read);
    });

    private static TextCorpus Corpus()
    {
        var text = ShakespeareStart.Value;
        var vocabulary = CharVocabulary.FromText(text);
        return new TextCorpus(vocabulary, vocabulary.Encode(text));
    }

    private static GptConfig TinyConfig(TextCorpus corpus) => TrainingPresets.Get("char-tiny", corpus.Vocabulary.Count);

    private static TrainingOptions Options(int steps, ulong seed = 7) => new()
    {
        Steps = steps, BatchSize = 8, Context = 32, LearningRate = 3e-3, WarmupSteps = 10, Seed = seed, EvalEvery = 1000,
        EvalWindows = 16,
    };

    [TestMethod]
    public void ShortRunLowersTheValidationLoss()
    {
        var corpus = Corpus();
        var trainer = new Trainer(TinyConfig(corpus), corpus, Options(80));
        double before = trainer.Evaluate(corpus.Validation);
        var result = trainer.Run(folder: null);
        TestContext.WriteLine($"validation loss {before:F4} -> {result.ValidationLoss:F4} after {result.Step} steps, {result.TokensPerSecond:F0} tok/s");
        Assert.AreEqual(80, result.Step);
        Assert.IsGreaterThan(Math.Log(corpus.Vocabulary.Count) - 0.3, before, "an untrained model should be near uniform");
        Assert.IsLessThan(before - 0.8, result.ValidationLoss!.Value, $"loss went from {before:F4} to {result.ValidationLoss:F4}");
    }

    [TestMethod]
    public void SameSeedRepeatsBitForBitAndAnotherSeedDoesNot()
    {
        var corpus = Corpus();
        float[] Train(ulong seed)
        {
            var trainer = new Trainer(TinyConfig(corpus), corpus, Options(12, seed));
            for (int i = 0; i < 12; i++)
            {
                trainer.TrainStep(out _, out _);
            }

            return trainer.Model.Parameters;
        }

        var a = Train(5);
        var b = Train(5);
        var c = Train(6);
        CollectionAssert.AreEqual(a, b, "two runs with seed 5 differ");
        CollectionAssert.AreNotEqual(a, c, "seeds 5 and 6 gave the same weights");
    }

    [TestMethod]
    public void ResumingFromACheckpointContinuesExactly()
    {
        var corpus = Corpus();
        var straight = new Trainer(TinyConfig(corpus), corpus, Options(10));
        for (int i = 0; i < 10; i++)
        {
            straight.TrainStep(out _, out _);
        }

        var folder = Path.Combine(Path.GetTempPath(), "onnxgpt-resume-" + Guid.NewGuid().ToString("N"));
        try
        {
            var first = new Trainer(TinyConfig(corpus), corpus, Options(10));
            for (int i = 0; i < 4; i++)
            {
                first.TrainStep(out _, out _);
            }

            first.Save(folder);
            var resumed = Trainer.Resume(folder, corpus, Trainer.ReadOptions(folder));
            Assert.AreEqual(4, resumed.Step);
            for (int i = 4; i < 10; i++)
            {
                resumed.TrainStep(out _, out _);
            }

            CollectionAssert.AreEqual(straight.Model.Parameters, resumed.Model.Parameters, "a resumed run drifted from the straight one");
            foreach (var file in new[] { Trainer.ConfigFile, Trainer.WeightsFile, Trainer.TokenizerFile, Trainer.OptimizerFile, Trainer.StateFile })
            {
                Assert.IsTrue(File.Exists(Path.Combine(folder, file)), $"{file} was not written");
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [TestMethod]
    public void OneThreadAndAllCoresGiveIdenticalGradients()
    {
        // Large enough that the parallel loops really split (above their inline threshold).
        var config = new GptConfig { VocabSize = 65, ContextLength = 64, Width = 64, Layers = 1, Heads = 2 };
        var random = new TrainingRandom(3);
        var inputs = Enumerable.Range(0, 4 * 64).Select(_ => random.NextInt(65)).ToArray();
        var targets = Enumerable.Range(0, 4 * 64).Select(_ => random.NextInt(65)).ToArray();

        (float Loss, float[] Gradients) Run(int? threads)
        {
            var model = new TrainableGpt<float>(config);
            model.InitializeGpt2(new TrainingRandom(9));
            Kernels.MaxDegreeOfParallelism = threads;
            float loss = model.Forward(inputs, targets, 4, 64);
            model.ZeroGradients();
            model.Backward();
            return (loss, model.Gradients);
        }

        var serial = Run(1);
        var parallel = Run(null);
        Assert.AreEqual(serial.Loss, parallel.Loss);
        CollectionAssert.AreEqual(serial.Gradients, parallel.Gradients);
    }

    [TestMethod]
    public void TrainedWeightsConvertToGptWeightsUnderExporterNames()
    {
        var corpus = Corpus();
        var trainer = new Trainer(TinyConfig(corpus) with { TiedHead = false, Bias = false }, corpus, Options(2));
        trainer.TrainStep(out _, out _);
        var weights = trainer.Model.ToWeights();
        CollectionAssert.AreEqual(GptWeights.ExpectedShapes(weights.Config).Keys.ToList(), weights.Names.ToList());
        var round = TrainableGpt<float>.FromWeights(weights);
        CollectionAssert.AreEqual(trainer.Model.Parameters, round.Parameters);
    }

    [TestMethod]
    public void MismatchedVocabularyIsRejectedWithBothNumbers()
    {
        var corpus = Corpus();
        var config = TinyConfig(corpus) with { VocabSize = corpus.Vocabulary.Count + 1 };
        var e = Assert.ThrowsExactly<OnnxGptException>(() => new Trainer(config, corpus, Options(1)));
        StringAssert.Contains(e.Message, $"vocab_size {corpus.Vocabulary.Count + 1}");
        StringAssert.Contains(e.Message, $"{corpus.Vocabulary.Count} distinct characters");
    }

    [TestMethod]
    public void LearningRateWarmsUpThenDecaysToTheMinimum()
    {
        var schedule = new LearningRateSchedule(1e-3, 1e-4, WarmupSteps: 10, TotalSteps: 110);
        Assert.AreEqual(1e-4, schedule.At(0), 1e-12);
        Assert.AreEqual(1e-3, schedule.At(9), 1e-12);
        Assert.AreEqual(1e-3, schedule.At(10), 1e-12);
        Assert.AreEqual(5.5e-4, schedule.At(60), 1e-12);
        Assert.AreEqual(1e-4, schedule.At(110), 1e-12);
        Assert.AreEqual(1e-4, schedule.At(500), 1e-12);
    }

    [TestMethod]
    public void ClippingScalesTheGlobalNormDown()
    {
        var g = new float[] { 3, 4 };
        double norm = AdamW<float>.ClipByGlobalNorm(g, 1.0);
        Assert.AreEqual(5.0, norm, 1e-9);
        Assert.AreEqual(1.0, AdamW<float>.GlobalNorm(g), 1e-5);
    }

    [TestMethod]
    public void WeightDecayFollowsNanoGptMatricesAndEmbeddingsOnly()
    {
        var model = new TrainableGpt<float>(new GptConfig { VocabSize = 10, ContextLength = 4, Width = 8, Layers = 1, Heads = 2 });
        var decayed = model.Slots.Where(s => s.DecaysWeight).Select(s => s.Name).ToHashSet();
        Assert.Contains(TensorNames.Wte, decayed);
        Assert.Contains(TensorNames.Wpe, decayed);
        Assert.Contains("transformer.h.0.mlp.c_fc.weight", decayed);
        Assert.DoesNotContain("transformer.h.0.mlp.c_fc.bias", decayed);
        Assert.DoesNotContain("transformer.h.0.ln_1.weight", decayed);
        Assert.DoesNotContain("transformer.ln_f.weight", decayed);
    }
}

using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>A real Hugging Face checkpoint (tiny-random-gpt2) with its own tokenizer, end to end.</summary>
[TestClass]
public sealed class CheckpointGenerationTests
{
    [TestMethod]
    public void TinyRandomGpt2GeneratesReferenceTokensFromText()
    {
        var weights = HfCheckpoint.Load(TestPaths.TinyRandomGpt2);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.Export(weights, tmp, options: new ExportOptions
        {
            Tokenizer = TokenizerDetection.Detect(TestPaths.TinyRandomGpt2, weights.Config.VocabSize),
            TokenizerSourceFolder = TestPaths.TinyRandomGpt2,
        });
        using var model = GptModel.Load(folder);
        Assert.IsNotNull(model.Tokenizer);
        Assert.AreEqual(98, model.Config.EosTokenId);

        string[] prompts = ["Hello world, this is", "A"];
        var options = new GenerationOptions { DoSample = false, MaxNewTokens = 12 };
        using var generator = model.CreateGenerator(options, new GeneratorOptions { StopAtEndOfSequence = false });
        generator.AppendTextBatch(prompts);
        var results = generator.GenerateAll();
        for (int b = 0; b < prompts.Length; b++)
        {
            var prompt = model.Tokenizer.Encode(prompts[b]);
            var expected = TestModels.ReferenceGreedy(weights, prompt, 12);
            CollectionAssert.AreEqual(prompt.Concat(expected).ToArray(), results[b].Ids.ToArray(), $"row {b}");
            Assert.AreEqual(model.Tokenizer.Decode(expected), results[b].Text, $"row {b}");
        }
    }
}

using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Reference;
using OnnxGpt.Training;

namespace OnnxGpt.Tests.Training;

/// <summary>
/// The trainer's forward pass and the exporter's plain-loop reference (<see cref="ReferenceGpt"/>) agree on the same
/// weights, so what is trained is what gets exported: same activations, layer norm, attention scale and head.
/// </summary>
[TestClass]
public sealed class ReferenceAgreementTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [DataRow(true, Activation.GeluNew, true)]
    [DataRow(false, Activation.Gelu, false)]
    [DataRow(true, Activation.Relu, true)]
    public void TrainerLogitsMatchTheReferenceForwardPass(bool bias, Activation activation, bool tied)
    {
        var config = new GptConfig
        {
            VocabSize = 23, ContextLength = 9, Width = 16, Layers = 2, Heads = 4, Bias = bias, Activation = activation, TiedHead = tied,
        };
        // Larger than GPT-2's 0.02 so that every layer moves the logits.
        var weights = SeededInit.Create(config, seed: 11, initializerRange: 0.3);
        var model = TrainableGpt<double>.FromWeights(weights);
        int[] tokens = [3, 1, 4, 1, 5, 9, 2, 6, 5];
        model.Forward(tokens, default, 1, tokens.Length);
        var expected = ReferenceGpt.Logits(weights, [tokens.Select(t => (long)t).ToArray()])[0];

        double maxDiff = 0;
        for (int t = 0; t < tokens.Length; t++)
        {
            for (int v = 0; v < config.VocabSize; v++)
            {
                maxDiff = Math.Max(maxDiff, Math.Abs(model.Logits[t * config.VocabSize + v] - expected[t][v]));
            }
        }

        TestContext.WriteLine($"max |trainer - reference| over all logits: {maxDiff:E2}");
        Assert.IsLessThan(1e-4, maxDiff, $"trainer and reference logits differ by up to {maxDiff:E2}");
    }
}

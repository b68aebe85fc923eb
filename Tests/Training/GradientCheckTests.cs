using OnnxGpt.Contracts;
using OnnxGpt.Training;

namespace OnnxGpt.Tests.Training;

/// <summary>
/// The analytic gradients of <see cref="TrainableGpt{T}"/> (double precision, the same generic code the float
/// trainer runs) against central finite differences, for up to 64 elements spread over every parameter tensor.
/// </summary>
[TestClass]
public sealed class GradientCheckTests
{
    public TestContext TestContext { get; set; } = null!;

    // Sizes chosen so every kernel path runs: 10 rows (4-row blocks plus a remainder), widths 12/36/22 (two-vector,
    // one-vector and scalar column tails for Vector<double>), 3 heads of 4, an odd vocabulary.
    private static GptConfig SmallConfig(bool bias, Activation activation, bool tied) => new()
    {
        VocabSize = 11, ContextLength = 6, Width = 12, Layers = 2, Heads = 3, InnerWidth = 22,
        Bias = bias, Activation = activation, TiedHead = tied,
    };

    [TestMethod]
    [DataRow(true, Activation.GeluNew, true)]
    [DataRow(false, Activation.Gelu, false)]
    [DataRow(true, Activation.Relu, false)]
    [DataRow(false, Activation.GeluNew, true)]
    public void AnalyticGradientsMatchFiniteDifferences(bool bias, Activation activation, bool tied)
    {
        var config = SmallConfig(bias, activation, tied);
        var model = new TrainableGpt<double>(config);
        var random = new TrainingRandom(1234);
        model.InitializeGpt2(random);
        // Larger weights than at initialisation, so every path carries a gradient well above rounding noise.
        for (int i = 0; i < model.Parameters.Length; i++)
        {
            model.Parameters[i] += 0.3 * random.NextGaussian();
        }

        const int batch = 2, seq = 5;
        var inputs = new int[batch * seq];
        var targets = new int[batch * seq];
        for (int i = 0; i < inputs.Length; i++)
        {
            inputs[i] = random.NextInt(config.VocabSize);
            targets[i] = random.NextInt(config.VocabSize);
        }

        model.Forward(inputs, targets, batch, seq);
        model.ZeroGradients();
        model.Backward();
        var analytic = (double[])model.Gradients.Clone();

        const double h = 1e-5;
        double worst = 0;
        foreach (var slot in model.Slots)
        {
            double maxDiff = 0, maxMagnitude = 1e-12;
            // Up to 64 elements per tensor, spread over it (with its first and last), keeps the check to a second.
            int stride = Math.Max(1, (slot.Length - 1) / 63);
            var indices = Enumerable.Range(0, slot.Length).Where(k => k % stride == 0 || k == slot.Length - 1).Select(k => slot.Offset + k);
            foreach (int i in indices)
            {
                double saved = model.Parameters[i];
                model.Parameters[i] = saved + h;
                double plus = model.Forward(inputs, targets, batch, seq);
                model.Parameters[i] = saved - h;
                double minus = model.Forward(inputs, targets, batch, seq);
                model.Parameters[i] = saved;
                double numeric = (plus - minus) / (2 * h);
                maxDiff = Math.Max(maxDiff, Math.Abs(numeric - analytic[i]));
                maxMagnitude = Math.Max(maxMagnitude, Math.Max(Math.Abs(numeric), Math.Abs(analytic[i])));
            }

            double relative = maxDiff / maxMagnitude;
            worst = Math.Max(worst, relative);
            TestContext.WriteLine($"{slot.Name,-36} max |grad| {maxMagnitude:E2}  max rel error {relative:E2}");
            Assert.IsGreaterThan(1e-6, maxMagnitude, $"{slot.Name}: gradient is zero, so the check would prove nothing.");
            Assert.IsLessThan(1e-6, relative, $"{slot.Name}: analytic and numeric gradients differ (max rel error {relative:E2}).");
        }

        TestContext.WriteLine($"worst relative error over all tensors: {worst:E2}");
    }
}

using Microsoft.ML.OnnxRuntime.Tensors;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter.Reference;
using OnnxGpt.Exporter;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>
/// <c>--dtype fp16</c>: float16 weights, activations and KV cache, float32 logits. ONNX Runtime runs it on CPU, so
/// its numbers are checked here against the reference, at float16's precision rather than 1e-4.
/// </summary>
[TestClass]
public sealed class Float16Tests
{
    [TestMethod]
    [DataRow(GraphFlavor.Portable)]
    [DataRow(GraphFlavor.Fused)]
    public void Float16ExportGeneratesWithAHalfSizeCacheCloseToTheReference(GraphFlavor flavor)
    {
        // Weights of GPT-2's scale keep float16 activations well inside its range.
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: 32), seed: 31, scale: 0.1);
        using var tmp = TestPaths.NewTemp();
        var graph = new GraphOptions { Flavor = flavor, Precision = WeightPrecision.Float16 };
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: new ExportOptions { Graph = graph }));
        Assert.AreEqual(TensorElementType.Float16, model.Signature.CacheElementType);

        int[] prompt = [3, 14, 15, 9, 26];
        using var generator = model.CreateGenerator(
            new GenerationOptions { DoSample = false, MaxNewTokens = 6 },
            new GeneratorOptions { DecodeText = false, StopAtEndOfSequence = false });
        generator.Append(prompt);
        double worst = 0, scale = 0;
        for (int step = 0; step < 6; step++)
        {
            // The logits for the next token (the model runs on whatever is pending), against the reference over
            // the same sequence: the prompt, then the prompt and each generated token (the cache in use).
            long[] sequence = generator.GetSequence(0).ToArray().Select(t => (long)t).ToArray();
            var actual = generator.GetNextTokenLogits(0).ToArray();
            var expected = ReferenceGpt.Logits(weights, [sequence])[0][^1];
            scale = Math.Max(scale, expected.Max(v => Math.Abs(v)));
            worst = Math.Max(worst, expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max());
            generator.GenerateNextToken();
        }

        // float16 keeps 11 significant bits: logits agree to about 1e-2 of their scale, not to 1e-4.
        Assert.IsLessThanOrEqualTo(0.02 * scale, worst, $"{flavor} fp16: max |logit − reference| = {worst}, logit scale {scale}");
        Assert.IsGreaterThan(0.0, worst, "float16 arithmetic differs measurably from the double reference");

        var cache = generator.Cache!;
        Assert.AreEqual(TensorElementType.Float16, cache.ElementType);
        long elements = (long)cache.BatchSize * cache.Heads * cache.Capacity * cache.HeadSize;
        int buffers = flavor == GraphFlavor.Fused ? 1 : 2;
        Assert.AreEqual(cache.TensorCount * buffers * elements * 2, cache.AllocatedBytes, "two bytes per cached value");
        Assert.ThrowsExactly<InvalidOperationException>(() => cache.GetTensor(0));
        Assert.IsTrue(cache.GetHalfTensor(0).ToArray().Any(h => h != Half.Zero), "the cache holds float16 keys");
    }

    [TestMethod]
    public void Float16AndQuantizationExcludeEachOther()
    {
        var e = Assert.ThrowsExactly<OnnxGptException>(() =>
            new GraphOptions { Flavor = GraphFlavor.Fused, Precision = WeightPrecision.Float16, Quantization = WeightQuantization.Int4 }.Validate());
        StringAssert.Contains(e.Message, "fp16");
    }
}

using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>
/// Beam search on a real checkpoint against the sequences ONNX Runtime publishes for it: its BeamSearch operator's
/// test (onnxruntime/test/contrib_ops/beam_search_test.cc, GptBeamSearchFp32, the same expectations in ONNX Runtime
/// GenAI's tests) runs hf-internal-testing/tiny-random-gpt2 on three 12-token prompts with 4 beams, max_length 20,
/// length_penalty 1, early_stopping false, one sequence returned, end token 98.
/// </summary>
[TestClass]
public sealed class BeamSearchPublishedTests
{
    private static readonly int[][] Prompts =
    [
        [0, 0, 0, 0, 0, 52, 195, 731, 321, 301, 734, 620],
        [41, 554, 74, 622, 206, 222, 75, 223, 221, 198, 224, 572],
        [0, 0, 0, 52, 328, 219, 328, 206, 288, 227, 896, 328],
    ];

    private static readonly int[][] Expected =
    [
        [131, 131, 131, 181, 638, 638, 638, 638],
        [292, 292, 292, 292, 292, 292, 292, 292],
        [328, 669, 669, 669, 669, 669, 669, 669],
    ];

    [TestMethod]
    [DataRow(GraphFlavor.Portable)]
    [DataRow(GraphFlavor.Fused)]
    public void TinyRandomGpt2GivesOnnxRuntimesPublishedBeams(GraphFlavor flavor)
    {
        var weights = HfCheckpoint.Load(TestPaths.TinyRandomGpt2);
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(weights, tmp, options: new ExportOptions { Graph = new GraphOptions { Flavor = flavor } }));
        Assert.AreEqual(98, model.Config.EosTokenId);
        var options = new GenerationOptions { NumBeams = 4, MaxNewTokens = 8, LengthPenalty = 1 };
        using var generator = model.CreateGenerator(options);
        generator.AppendBatch(Prompts);
        var results = generator.GenerateAll();
        for (int p = 0; p < Prompts.Length; p++)
        {
            CollectionAssert.AreEqual(Expected[p], results[p].NewIds.ToArray(),
                $"prompt {p}: expected [{string.Join(",", Expected[p])}], got [{string.Join(",", results[p].NewIds)}] (score {results[p].Score})");
        }
    }
}

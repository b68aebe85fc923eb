using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>
/// Speculative decoding on model folders laid out by other tools (<see cref="ForeignFolders"/>): the verifying step
/// feeds several tokens after a past through whatever graph the layout runs then (an Optimum pair's with-past decoder
/// after its first-step one, a merged decoder's cache branch, GenAI's renamed inputs), and greedy output stays the plain
/// one; the Model Zoo's graph, which has no cache, decodes plainly.
/// Drafts: prompt lookup, and our own export of the same weights.
/// </summary>
[TestClass]
public sealed class SpeculativeForeignFolderTests
{
    private static readonly GenerationOptions Greedy = new() { DoSample = false, MaxNewTokens = 24 };
    private static readonly int[] Prompt = [5, 17, 3, 51, 0, 9, 5, 17];
    private static TempFolder? s_tmp;
    private static GptModel? s_ours;

    [ClassInitialize]
    public static void Initialize(TestContext _)
    {
        s_tmp = new TempFolder();
        string folder = s_tmp.Sub("ours");
        GptExporter.Export(ForeignFolders.Weights, folder, new ExportOptions
        {
            Tokenizer = TokenizerDetection.Detect(TestPaths.TinyRandomGpt2, ForeignFolders.Weights.Config.VocabSize),
            TokenizerSourceFolder = TestPaths.TinyRandomGpt2,
        });
        s_ours = GptModel.Load(folder);
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        s_ours?.Dispose();
        s_tmp?.Dispose();
    }

    [TestMethod]
    [DataRow("optimum pair", true)]
    [DataRow("optimum merged", true)]
    [DataRow("genai gpt2", true)]
    [DataRow("model zoo", false)]
    public void GreedyOutputIsPlainGreedyOnAForeignLayout(string convention, bool cached)
    {
        using var tmp = TestPaths.NewTemp();
        string folder = convention switch
        {
            "optimum pair" => ForeignFolders.OptimumPair(tmp),
            "optimum merged" => ForeignFolders.OptimumMerged(tmp),
            "genai gpt2" => ForeignFolders.GenAiGpt2(tmp),
            "model zoo" => ForeignFolders.ModelZoo(tmp, config: true),
            _ => throw new ArgumentOutOfRangeException(nameof(convention), convention, "no such convention in this test"),
        };
        using var model = GptModel.Load(folder);
        using var plain = model.CreateGenerator(Greedy);
        plain.Append(Prompt);
        var expected = plain.GenerateAll()[0];

        foreach (var speculation in new[]
        {
            new SpeculativeDecoding { PromptLookup = 2, DraftTokens = 4 },
            new SpeculativeDecoding { DraftModel = s_ours, DraftTokens = 3 },
        })
        {
            using var generator = model.CreateGenerator(Greedy with { Speculation = speculation });
            generator.Append(Prompt);
            var result = generator.GenerateAll()[0];
            string what = $"{convention}, {(speculation.DraftModel is null ? "lookup" : "draft model")}";
            CollectionAssert.AreEqual(expected.Ids.ToArray(), result.Ids.ToArray(),
                $"{what}: speculative [{string.Join(", ", result.NewIds)}], plain [{string.Join(", ", expected.NewIds)}]");
            if (cached)
            {
                Assert.IsGreaterThan(0L, generator.Speculation?.Rounds ?? 0, $"{what}: no verifying step ran");
            }
            else
            {
                // A graph without a KV cache has no past to verify after: it decodes plainly.
                Assert.IsFalse(generator.UsesKvCache, $"{what}: the layout was expected to run without a cache");
                Assert.AreEqual(0L, generator.Speculation?.Rounds ?? 0, $"{what}: a verifying step ran without a cache");
            }
        }
    }
}

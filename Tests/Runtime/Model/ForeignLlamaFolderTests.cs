using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Model;

/// <summary>
/// A real pretrained Llama (stories260K: grouped-query attention, 8 query heads over 4 key/value heads) in the folders
/// other tools make of a <c>LlamaForCausalLM</c>: Optimum's (single, merged with <c>use_cache_branch</c>, the pair),
/// transformers.js' <c>onnx/</c> subfolder, and an ONNX Runtime GenAI <c>llama</c> folder whose graph carries no
/// OnnxGpt metadata. Each is described from its own files (a Llama <c>config.json</c>, <c>genai_config.json</c>,
/// <c>tokenizer.model</c>) and generates, greedily, the tokens and the story of our own export of the same weights.
/// </summary>
[TestClass]
public sealed class ForeignLlamaFolderTests
{
    private static readonly GenerationOptions Greedy = new() { DoSample = false, MaxNewTokens = 24 };

    /// <summary>Two rows of different lengths, both from BOS (1).</summary>
    private static readonly int[][] Uneven = [[1, 403, 407, 261, 378, 11, 395], [1, 433, 477]];

    private static TempFolder? s_tmp;
    private static GptModel? s_ours;

    [ClassInitialize]
    public static void Initialize(TestContext _)
    {
        s_tmp = new TempFolder();
        s_ours = GptModel.Load(Stories260KExport.Folder(s_tmp, "ours"));
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        s_ours?.Dispose();
        s_tmp?.Dispose();
    }

    [TestMethod]
    [DataRow("optimum model.onnx", ModelLayoutKind.Optimum, "model.onnx")]
    [DataRow("optimum merged", ModelLayoutKind.Optimum, "decoder_model_merged.onnx")]
    [DataRow("optimum pair", ModelLayoutKind.Optimum, "decoder_with_past_model.onnx")]
    [DataRow("transformers.js model_quantized.onnx", ModelLayoutKind.TransformersJs, "model_quantized.onnx")]
    [DataRow("genai llama", ModelLayoutKind.GenAi, "model.onnx")]
    public void LlamaFolderIsDescribedFromItsFilesAndTellsOurStory(string convention, ModelLayoutKind kind, string file)
    {
        using var tmp = TestPaths.NewTemp();
        var from = ForeignFolders.Stories;
        string folder = convention switch
        {
            "optimum model.onnx" => ForeignFolders.OptimumSingle(tmp, from: from),
            "optimum merged" => ForeignFolders.OptimumMerged(tmp, from: from),
            "optimum pair" => ForeignFolders.OptimumPair(tmp, from: from),
            "transformers.js model_quantized.onnx" => ForeignFolders.TransformersJs(tmp, "model_quantized.onnx", from: from),
            "genai llama" => ForeignFolders.GenAiLlama(tmp),
            _ => throw new ArgumentOutOfRangeException(nameof(convention), convention, "no such convention in this test"),
        };
        using var model = GptModel.Load(folder);
        var ours = s_ours!;

        Assert.IsFalse(model.Metadata.ContainsKey(MetadataKeys.Config), $"{convention}: the graph carries no OnnxGpt description");
        Assert.AreEqual(kind, model.Layout.Kind, $"{convention}: {model.Layout}");
        Assert.AreEqual(file, Path.GetFileName(model.ModelPath), convention);
        Assert.AreEqual(IoConventions.Optimum, model.Signature.Convention, convention);
        var c = ours.Config;
        Assert.AreEqual((ModelFamily.Llama, c.VocabSize, c.ContextLength, c.Width, c.Layers, c.Heads, c.KvHeads),
            (model.Config.Family, model.Config.VocabSize, model.Config.ContextLength, model.Config.Width, model.Config.Layers, model.Config.Heads,
                model.Config.KvHeads), $"{convention}: the shape, from {model.ConfigSource}");
        if (kind != ModelLayoutKind.GenAi)
        {
            Assert.AreEqual(c.FeedForwardWidth, model.Config.FeedForwardWidth, $"{convention}: config.json's intermediate_size (GenAI's config states none)");
        }

        Assert.AreEqual((1, 2), (model.Config.BosTokenId, model.Config.EosTokenId), convention);
        Assert.AreEqual(TokenizerSpec.SentencePieceKind, model.TokenizerSpec?.Kind, $"{convention}: tokenizer.model");

        // Batched, uneven, with the cache and without (a fused graph always writes its cache).
        foreach (bool cache in model.Signature.IsFused ? new[] { true } : [true, false])
        {
            var settings = new GeneratorOptions { UseKvCache = cache };
            var expected = Generate(ours, Uneven, settings);
            var found = Generate(model, Uneven, settings);
            for (int b = 0; b < Uneven.Length; b++)
            {
                CollectionAssert.AreEqual(expected[b], found[b],
                    $"{convention}, cache {cache}, row {b}: ours [{string.Join(", ", expected[b])}], found [{string.Join(", ", found[b])}]");
            }
        }

        // From BOS, through the folder's tokenizer: the story.
        using var generator = model.CreateGenerator(Greedy);
        generator.AppendText("");
        string text = generator.GenerateAll()[0].Text ?? "";
        StringAssert.StartsWith(text, Stories260K.GreedyStart, convention);
        Assert.AreEqual(ours.GenerateText("", Greedy), text, convention);
    }

    [TestMethod]
    public void LlamaConfigThatDisagreesWithTheGraphIsRefusedInItsOwnFieldNames()
    {
        using var tmp = TestPaths.NewTemp();
        string folder = ForeignFolders.OptimumSingle(tmp, from: ForeignFolders.Stories);
        string path = Path.Combine(folder, ModelFolder.ConfigFile);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"num_key_value_heads\":4", "\"num_key_value_heads\":8", StringComparison.Ordinal));
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose());
        StringAssert.Contains(e.Message, "config.json says num_key_value_heads is 8, but the graph has 4 heads in its past inputs");
    }

    [TestMethod]
    public async Task EveryEndIdAFolderListsEndsTheSequence()
    {
        // The story from BOS on our export; the first token after the third that has not come before stands in for a
        // chat model's second end token (Llama 3's <|eot_id|>, Qwen2's <|im_end|>).
        var ours = s_ours!;
        var story = Generate(ours, [[1]], new GeneratorOptions())[0][1..];
        int k = Enumerable.Range(3, story.Length - 3).First(i => Array.IndexOf(story, story[i], 0, i) < 0);
        int end = story[k];

        // Optimum: generation_config.json lists [2, end]; the generator stops there.
        using var tmp = TestPaths.NewTemp();
        string optimum = ForeignFolders.OptimumSingle(tmp, from: ForeignFolders.Stories);
        File.WriteAllText(Path.Combine(optimum, "generation_config.json"), $$"""{"bos_token_id": 1, "eos_token_id": [2, {{end}}]}""");
        using (var model = GptModel.Load(optimum))
        {
            CollectionAssert.AreEqual(new[] { 2, end }, model.EndTokenIds.ToArray());
            using var generator = model.CreateGenerator(Greedy);
            generator.Append([1]);
            var result = generator.GenerateAll()[0];
            Assert.AreEqual(FinishReason.EndOfSequence, result.FinishReason);
            CollectionAssert.AreEqual(story[..(k + 1)], result.Ids.ToArray()[1..], "the story up to the end token");
        }

        // GenAI (a fused graph: the batch engine): genai_config.json's model.eos_token_id lists them.
        string genai = ForeignFolders.GenAiLlama(tmp);
        string path = Path.Combine(genai, ModelFolder.GenAiConfigFile);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"eos_token_id\": 2", $"\"eos_token_id\": [2, {end}]", StringComparison.Ordinal));
        using (var model = GptModel.Load(genai))
        {
            CollectionAssert.AreEqual(new[] { 2, end }, model.EndTokenIds.ToArray());
            using var engine = OnnxGpt.Runtime.Batching.BatchEngine.Start(model, new OnnxGpt.Runtime.Batching.BatchEngineOptions { Slots = 2 });
            var request = engine.Submit([1], Greedy);
            await request.Completion;
            Assert.AreEqual(FinishReason.EndOfSequence, request.FinishReason);
            CollectionAssert.AreEqual(story[..(k + 1)], request.Result!.Ids.ToArray()[1..], "the story up to the end token, batched");
        }

        // A list agrees with a file that names one of its ids; a file naming another disagrees.
        string config = Path.Combine(genai, ModelFolder.ConfigFile);
        File.WriteAllText(config, $$"""{"eos_token_id": [{{end}}, 2]}""");
        using (var model = GptModel.Load(genai))
        {
            CollectionAssert.AreEqual(new[] { 2, end }, model.EndTokenIds.ToArray(), "genai_config.json's order first");
        }

        File.WriteAllText(config, """{"eos_token_id": [7, 9]}""");
        var stale = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(genai).Dispose());
        StringAssert.Contains(stale.Message, "config.json says eos_token_id is 7 but");

        // An end id outside the vocabulary is refused naming the file.
        File.WriteAllText(Path.Combine(optimum, "config.json"), File.ReadAllText(Path.Combine(optimum, "config.json"))
            .Replace("\"eos_token_id\":2", "\"eos_token_id\":[2,512]", StringComparison.Ordinal));
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(optimum).Dispose());
        StringAssert.Contains(e.Message, "config.json: eos_token_id lists 512, outside the vocabulary of 512 tokens");
    }

    private static int[][] Generate(GptModel model, int[][] prompts, GeneratorOptions settings)
    {
        using var generator = model.CreateGenerator(Greedy, settings);
        generator.AppendBatch(prompts);
        return generator.GenerateAll().Select(r => r.Ids.ToArray()).ToArray();
    }
}

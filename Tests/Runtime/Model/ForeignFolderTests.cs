using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Model;

/// <summary>
/// Model folders laid out as other tools lay them out (<see cref="ForeignFolders"/>: the same real checkpoint under
/// each convention's file names, I/O names, shapes and side files) are recognised from their files and graphs alone
/// and generate, greedily, exactly the tokens and text of our own export of the same weights, batched and not, with
/// the KV cache and without.
/// </summary>
[TestClass]
public sealed class ForeignFolderTests
{
    private static readonly GenerationOptions Greedy = new() { DoSample = false, MaxNewTokens = 8 };

    /// <summary>Two rows of different lengths (the graph masks the padding), and two of one length (for a graph without a mask).</summary>
    private static readonly int[][] Uneven = [[5, 17, 3, 51, 0, 9], [8, 41, 2]];
    private static readonly int[][] Even = [[5, 17, 3, 51], [8, 41, 2, 7]];
    private const string Text = "Hello world, this is";

    private static TempFolder? s_tmp;
    private static GptModel? s_ours;

    private static GptModel Ours => s_ours!;

    [ClassInitialize]
    public static void Initialize(TestContext _)
    {
        s_tmp = new TempFolder();
        string source = TestPaths.TinyRandomGpt2;
        string folder = s_tmp.Sub("ours");
        GptExporter.Export(ForeignFolders.Weights, folder, new ExportOptions
        {
            Tokenizer = TokenizerDetection.Detect(source, ForeignFolders.Weights.Config.VocabSize),
            TokenizerSourceFolder = source,
        });
        s_ours = GptModel.Load(folder);
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        s_ours?.Dispose();
        s_tmp?.Dispose();
    }

    public static IEnumerable<object[]> Conventions =>
    [
        ["optimum model.onnx", ModelLayoutKind.Optimum, IoConventions.Optimum, "model.onnx"],
        ["optimum merged", ModelLayoutKind.Optimum, IoConventions.Optimum, "decoder_model_merged.onnx"],
        ["optimum pair", ModelLayoutKind.Optimum, IoConventions.Optimum, "decoder_with_past_model.onnx"],
        ["transformers.js model.onnx", ModelLayoutKind.TransformersJs, IoConventions.Optimum, "model.onnx"],
        ["transformers.js model_quantized.onnx", ModelLayoutKind.TransformersJs, IoConventions.Optimum, "model_quantized.onnx"],
        ["transformers.js decoder_model_merged_quantized.onnx", ModelLayoutKind.TransformersJs, IoConventions.Optimum, "decoder_model_merged_quantized.onnx"],
        ["transformers.js pair quantized", ModelLayoutKind.TransformersJs, IoConventions.Optimum, "decoder_with_past_model_quantized.onnx"],
        ["genai gpt2", ModelLayoutKind.GenAi, IoConventions.OrtGpt2, "past.onnx"],
        ["genai gpt2 renamed", ModelLayoutKind.GenAi, IoConventions.OrtGpt2, "past.onnx"],
        ["genai decoder renamed", ModelLayoutKind.GenAi, IoConventions.Optimum, "decoder.onnx"],
        ["model zoo", ModelLayoutKind.ModelZoo, ModelSignature.ModelZooConvention, "gpt2-lm-head-10.onnx"],
    ];

    private static string Build(string convention, TempFolder tmp) => convention switch
    {
        "optimum model.onnx" => ForeignFolders.OptimumSingle(tmp),
        "optimum merged" => ForeignFolders.OptimumMerged(tmp),
        "optimum pair" => ForeignFolders.OptimumPair(tmp),
        "transformers.js model.onnx" => ForeignFolders.TransformersJs(tmp, "model.onnx"),
        "transformers.js model_quantized.onnx" => ForeignFolders.TransformersJs(tmp, "model_quantized.onnx"),
        "transformers.js decoder_model_merged_quantized.onnx" => ForeignFolders.TransformersJs(tmp, "decoder_model_merged_quantized.onnx"),
        "transformers.js pair quantized" => ForeignFolders.OptimumPair(tmp, "transformers-js-pair", "onnx", "_quantized"),
        "genai gpt2" => ForeignFolders.GenAiGpt2(tmp),
        "genai gpt2 renamed" => ForeignFolders.GenAiGpt2(tmp, renamed: true),
        "genai decoder renamed" => ForeignFolders.GenAiDecoderRenamed(tmp),
        "model zoo" => ForeignFolders.ModelZoo(tmp, config: true),
        _ => throw new ArgumentOutOfRangeException(nameof(convention), convention, "no such convention in this test"),
    };

    [TestMethod]
    [DynamicData(nameof(Conventions))]
    public void ConventionIsDetectedAndGeneratesWhatOurExportGenerates(string convention, ModelLayoutKind kind, string io, string file)
    {
        using var tmp = TestPaths.NewTemp();
        string folder = Build(convention, tmp);
        using var model = GptModel.Load(folder);

        Assert.AreEqual(kind, model.Layout.Kind, $"{convention}: {model.Layout}");
        Assert.AreEqual(io, model.Signature.Convention, convention);
        Assert.AreEqual(file, Path.GetFileName(model.ModelPath), convention);
        Assert.AreEqual(Path.GetFullPath(folder), model.Folder, $"{convention}: the description and tokenizer files are found at the folder's top");
        Assert.AreEqual(file.StartsWith("decoder_with_past", StringComparison.Ordinal), model.Layout.FirstStepPath is not null, $"{convention}: a first-step decoder");
        Assert.AreEqual(file.StartsWith("decoder_model_merged", StringComparison.Ordinal), model.Signature.HasUseCacheBranch, $"{convention}: use_cache_branch");
        var c = ForeignFolders.Weights.Config;
        Assert.AreEqual((c.VocabSize, c.ContextLength, c.Width, c.Layers, c.Heads), (model.Config.VocabSize, model.Config.ContextLength, model.Config.Width, model.Config.Layers, model.Config.Heads), convention);
        Assert.AreEqual(98, model.Config.EosTokenId, convention);

        bool masked = model.Signature.AttentionMaskType is not null;
        int[][] prompts = masked ? Uneven : Even;
        foreach (bool cache in new[] { true, false })
        {
            var settings = new GeneratorOptions { UseKvCache = cache };
            var expected = Generate(Ours, prompts, settings);
            var found = Generate(model, prompts, settings);
            for (int b = 0; b < prompts.Length; b++)
            {
                CollectionAssert.AreEqual(expected[b], found[b],
                    $"{convention}, cache {cache}, row {b}: ours [{string.Join(", ", expected[b])}], found [{string.Join(", ", found[b])}]");
            }
        }

        // One row alone, against the reference forward pass too: every step feeds the graph that convention runs then.
        var reference = TestModels.ReferenceGreedy(ForeignFolders.Weights, prompts[0], Greedy.MaxNewTokens, stopId: 98);
        CollectionAssert.AreEqual(reference, Generate(model, [prompts[0]], new GeneratorOptions())[0][prompts[0].Length..], $"{convention}: reference");

        // Text, through the tokenizer files the convention keeps (the Model Zoo keeps none).
        if (kind == ModelLayoutKind.ModelZoo)
        {
            Assert.IsNull(model.Tokenizer, "the Model Zoo's layout has no tokenizer files, and a 1000-token vocabulary is not GPT-2's");
        }
        else
        {
            Assert.IsNotNull(model.Tokenizer, convention);
            Assert.AreEqual(Ours.GenerateText(Text, Greedy), model.GenerateText(Text, Greedy), $"{convention}: text");
        }
    }

    [TestMethod]
    public void GenAiFolderWithoutContextLengthTakesItFromConfigJsonOrSaysWhereItLooked()
    {
        using var tmp = TestPaths.NewTemp();
        string folder = ForeignFolders.GenAiGpt2(tmp, contextLength: false);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose());
        StringAssert.Contains(e.Message, "context length");
        StringAssert.Contains(e.Message, "'genai_config.json'");
        StringAssert.Contains(e.Message, "5 layers, 4 heads of size 8, 1000 logits");

        // GenAI's fp16 test folder states no context length either; the config.json of GenAI's fp32 folder has one, beside
        // an older description nested under "model" and no top-level width or layers: what it states is read, no more.
        File.WriteAllText(Path.Combine(folder, ModelFolder.ConfigFile), """
            {
              "model": { "decoder": "past.onnx", "type": "gpt2", "vocab_size": 1000, "hidden_size": 8, "n_embd": 32, "n_head": 4, "n_layer": 5,
                         "past_names": "past_%d", "present_names": "present_%d" },
              "activation_function": "gelu_new", "bos_token_id": 98, "eos_token_id": 98, "hidden_act": "gelu", "intermediate_size": 37,
              "n_ctx": 512, "n_positions": 512, "pad_token_id": 98
            }
            """);
        using var model = GptModel.Load(folder);
        Assert.AreEqual(512, model.Config.ContextLength);
        Assert.AreEqual((32, 4, 4), (model.Config.Width, model.Config.Heads, model.Config.KvHeads), "heads and width from the cache's heads and head size");
        StringAssert.EndsWith(model.ConfigSource, ModelFolder.GenAiConfigFile);

        // That config.json contradicting the graph is still caught, in its own terms.
        File.WriteAllText(Path.Combine(folder, ModelFolder.ConfigFile), """{ "n_positions": 512, "bos_token_id": 97 }""");
        var stale = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose());
        StringAssert.Contains(stale.Message, "config.json says bos_token_id is 97 but");
        StringAssert.Contains(stale.Message, "genai_config.json says model.bos_token_id is 98");
    }

    [TestMethod]
    public void GenAiConfigThatDisagreesWithTheGraphIsRefusedInItsOwnFieldNames()
    {
        using var tmp = TestPaths.NewTemp();
        string folder = ForeignFolders.GenAiGpt2(tmp);
        string path = Path.Combine(folder, ModelFolder.GenAiConfigFile);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"num_key_value_heads\":4", "\"num_key_value_heads\":2", StringComparison.Ordinal));
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose());
        StringAssert.Contains(e.Message, "genai_config.json says model.decoder.num_key_value_heads is 2, but the graph has 4 heads in its past inputs");
    }

    [TestMethod]
    public void GenAiNamesThatTheGraphLacksAreNamedInTheError()
    {
        using var tmp = TestPaths.NewTemp();
        string folder = ForeignFolders.GenAiGpt2(tmp);
        string path = Path.Combine(folder, ModelFolder.GenAiConfigFile);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"past_names\":\"past_%d\"", "\"past_names\":\"kv_%d\"", StringComparison.Ordinal));
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose());
        StringAssert.Contains(e.Message, "graph input 'past_0' is not one this runtime knows how to feed");
        StringAssert.Contains(e.Message, "kv_{i}");
        StringAssert.Contains(e.Message, "genai_config.json declares");

        File.WriteAllText(path, File.ReadAllText(path).Replace("\"present_names\":\"present_%d\"", "\"present_names\":\"present\"", StringComparison.Ordinal));
        e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose());
        StringAssert.Contains(e.Message, "$.model.decoder.outputs.present_names is \"present\"; expected a name pattern with one %d");
    }

    [TestMethod]
    public void ConfigJsonThatDisagreesWithAForeignGraphIsRefused()
    {
        using var tmp = TestPaths.NewTemp();
        string folder = ForeignFolders.TransformersJs(tmp, "model_quantized.onnx");
        string path = Path.Combine(folder, ModelFolder.ConfigFile);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"n_layer\": 5", "\"n_layer\": 4", StringComparison.Ordinal));
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose());
        StringAssert.Contains(e.Message, "config.json says n_layer is 4, but the graph has 5 layers of past inputs; the config does not belong to this model");
    }

    [TestMethod]
    public void PairHalvesFromDifferentModelsAreRefused()
    {
        using var tmp = TestPaths.NewTemp();
        string folder = ForeignFolders.OptimumPair(tmp);
        var other = TestWeights.Random(ForeignFolders.Weights.Config with { Layers = 4 }, seed: 7);
        ForeignFolders.Save(ForeignFolders.WithoutPast(OnnxGpt.Exporter.Onnx.GptGraph.Build(other)), Path.Combine(folder, "decoder_model.onnx"));
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose());
        StringAssert.Contains(e.Message, "do not make one decoder");
        StringAssert.Contains(e.Message, "first-step decoder has no output 'present.4.key'");

        File.Delete(Path.Combine(folder, "decoder_model.onnx"));
        e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose());
        StringAssert.Contains(e.Message, "needs 'decoder_model.onnx' beside it for the first step");
    }

    [TestMethod]
    public void ModelZooGpt2IsRecognisedByItsShapeWithoutAnyConfig()
    {
        using var tmp = TestPaths.NewTemp();
        string folder = ForeignFolders.ModelZooGpt2Declared(tmp);
        using var model = GptModel.Load(folder);
        Assert.AreEqual(ModelLayoutKind.ModelZoo, model.Layout.Kind);
        Assert.AreEqual(GptPresets.Get("gpt2"), model.Config);
        StringAssert.Contains(model.ConfigSource, "the preset 'gpt2'");
        Assert.AreEqual(TokenizerSpec.Gpt2Kind, model.TokenizerSpec!.Kind, "GPT-2's own tokenizer, by the vocabulary's size");
        Assert.AreEqual(3, model.Signature.InputIdsRank);

        // The same file by its path.
        using var byFile = GptModel.Load(Path.Combine(folder, "gpt2-lm-head-10.onnx"));
        Assert.AreEqual(ModelLayoutKind.ModelZoo, byFile.Layout.Kind);

        // A tiny graph in the zoo's layout matches no preset: it needs its checkpoint's config.json.
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(ForeignFolders.ModelZoo(tmp, config: false, name: "tiny-zoo")).Dispose());
        StringAssert.Contains(e.Message, "context length");
        StringAssert.Contains(e.Message, "matches no preset");
    }

    [TestMethod]
    public void AnUnrecognisedFolderListsWhatItHoldsAndTheLayoutsSupported()
    {
        using var tmp = TestPaths.NewTemp();
        string folder = tmp.Sub("unknown");
        Directory.CreateDirectory(Path.Combine(folder, "weights"));
        File.WriteAllText(Path.Combine(folder, "a.onnx"), "");
        File.WriteAllText(Path.Combine(folder, "b.onnx"), "");
        File.WriteAllText(Path.Combine(folder, "notes.txt"), "");
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose());
        StringAssert.Contains(e.Message, "holds no model in a layout this runtime recognises; it holds a.onnx, b.onnx, notes.txt, weights/.");
        foreach (var layout in new[] { "genai_config.json", "decoder_model_merged.onnx", "decoder_with_past_model.onnx", "onnx/", "model_quantized.onnx", "Model Zoo" })
        {
            StringAssert.Contains(e.Message, layout);
        }
    }

    [TestMethod]
    public void EncoderDecoderAndMultimodalFoldersAreRefusedByName()
    {
        using var tmp = TestPaths.NewTemp();
        // Optimum's seq2seq export, at the top and in transformers.js' onnx/.
        string seq2seq = ForeignFolders.OptimumPair(tmp, "t5");
        File.WriteAllText(Path.Combine(seq2seq, "encoder_model.onnx"), "");
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(seq2seq).Dispose());
        StringAssert.Contains(e.Message, "holds 'encoder_model.onnx': an encoder-decoder export");
        string js = ForeignFolders.OptimumPair(tmp, "whisper-js", "onnx", "_quantized");
        File.WriteAllText(Path.Combine(js, "onnx", "encoder_model_quantized.onnx"), "");
        e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(js).Dispose());
        StringAssert.Contains(e.Message, "holds 'encoder_model_quantized.onnx'");

        // GenAI's multimodal config: a vision section beside the decoder.
        string genai = ForeignFolders.GenAiGpt2(tmp);
        string path = Path.Combine(genai, ModelFolder.GenAiConfigFile);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"decoder\":", "\"vision\":{\"filename\":\"vision.onnx\"},\"decoder\":", StringComparison.Ordinal));
        e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(genai).Dispose());
        StringAssert.Contains(e.Message, "genai_config.json: $.model.vision describes a vision graph beside the decoder (model.type 'gpt2')");
    }

    [TestMethod]
    public void TransformersJsTriesTheDtypeItsConfigNamesThenFullPrecisionFirst()
    {
        using var tmp = TestPaths.NewTemp();
        string folder = tmp.Sub("js");
        string onnx = Path.Combine(folder, "onnx");
        Directory.CreateDirectory(onnx);
        foreach (var name in new[] { "model_q4.onnx", "model_quantized.onnx", "decoder_model_merged.onnx" })
        {
            File.WriteAllText(Path.Combine(onnx, name), "");
        }

        Assert.AreEqual("decoder_model_merged.onnx", Path.GetFileName(ModelLayout.Find(folder).ModelPath), "full precision before any suffix");
        File.WriteAllText(Path.Combine(folder, ModelFolder.ConfigFile), """{"transformers.js_config": {"dtype": "q4"}}""");
        var layout = ModelLayout.Find(folder);
        Assert.AreEqual("model_q4.onnx", Path.GetFileName(layout.ModelPath));
        Assert.AreEqual(ModelLayoutKind.TransformersJs, layout.Kind);
        Assert.AreEqual(Path.GetFullPath(folder), layout.Folder);
        File.WriteAllText(Path.Combine(folder, ModelFolder.ConfigFile), """{"transformers.js_config": {"dtype": {"model": "q8"}}}""");
        Assert.AreEqual("model_quantized.onnx", Path.GetFileName(ModelLayout.Find(folder).ModelPath));

        // A file inside onnx/ keeps the description above it.
        var byFile = ModelLayout.Find(Path.Combine(onnx, "model_q4.onnx"));
        Assert.AreEqual((ModelLayoutKind.TransformersJs, Path.GetFullPath(folder)), (byFile.Kind, byFile.Folder));
    }

    [TestMethod]
    public void TransformersJsFp16FileWithHalfLogitsGeneratesWhatOurFp16ExportGenerates()
    {
        using var tmp = TestPaths.NewTemp();
        string folder = ForeignFolders.TransformersJsFp16(tmp);
        using var model = GptModel.Load(folder);
        Assert.AreEqual("model_fp16.onnx", Path.GetFileName(model.ModelPath));
        Assert.AreEqual(Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16, model.Signature.LogitsElementType);
        Assert.AreEqual(Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float16, model.Signature.CacheElementType);

        string oursFolder = tmp.Sub("ours-fp16");
        GptExporter.Export(ForeignFolders.Weights, oursFolder, new ExportOptions
        {
            Graph = new OnnxGpt.Exporter.Onnx.GraphOptions { Precision = OnnxGpt.Exporter.Onnx.WeightPrecision.Float16 },
            Tokenizer = TokenizerDetection.Detect(TestPaths.TinyRandomGpt2, ForeignFolders.Weights.Config.VocabSize),
            TokenizerSourceFolder = TestPaths.TinyRandomGpt2,
        });
        using var ours = GptModel.Load(oursFolder);
        Assert.AreEqual(Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float, ours.Signature.LogitsElementType, "our float16 export's logits are float32");
        foreach (bool cache in new[] { true, false })
        {
            var settings = new GeneratorOptions { UseKvCache = cache };
            var expected = Generate(ours, Uneven, settings);
            var found = Generate(model, Uneven, settings);
            for (int b = 0; b < Uneven.Length; b++)
            {
                CollectionAssert.AreEqual(expected[b], found[b], $"cache {cache}, row {b}: ours [{string.Join(", ", expected[b])}], found [{string.Join(", ", found[b])}]");
            }
        }

        // The widened logits are our export's, which were float16 values before their cast to float32.
        Assert.AreEqual(ours.GenerateText(Text, Greedy), model.GenerateText(Text, Greedy), "text");
    }

    /// <summary>Greedy ids (prompt included) of each row, generated as one batch.</summary>
    private static int[][] Generate(GptModel model, int[][] prompts, GeneratorOptions settings)
    {
        using var generator = model.CreateGenerator(Greedy, settings);
        generator.AppendBatch(prompts);
        return generator.GenerateAll().Select(r => r.Ids.ToArray()).ToArray();
    }
}

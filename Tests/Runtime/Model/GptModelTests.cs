using Microsoft.ML.OnnxRuntime;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Providers;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Model;

/// <summary>Loading: what a model says about itself, fallbacks for models exported elsewhere, and every refusal.</summary>
[TestClass]
public sealed class GptModelTests
{
    [TestMethod]
    public void ExportedFolderDescribesItself()
    {
        var config = TestWeights.Small() with { BosTokenId = 1, EosTokenId = 2 };
        var weights = TestWeights.Random(config, seed: 41);
        using var tmp = TestPaths.NewTemp();
        var defaults = new GenerationDefaults { MaxNewTokens = 12, TopK = 7, Prompt = "Once" };
        string folder = TestModels.Export(weights, tmp, options: new ExportOptions { Tokenizer = TokenizerSpec.Gpt2, Generation = defaults });

        using var model = GptModel.Load(folder);
        Assert.AreEqual(config, model.Config);
        Assert.AreEqual(TokenizerSpec.Gpt2, model.TokenizerSpec);
        Assert.AreEqual(defaults, model.GenerationDefaults);
        Assert.AreEqual(IoConventions.Optimum, model.Signature.Convention);
        Assert.AreEqual(Path.GetFullPath(Path.Combine(folder, ModelFolder.ModelFile)), model.ModelPath);
        StringAssert.Contains(model.ConfigSource, MetadataKeys.Config);
        Assert.AreEqual("1", model.Metadata[MetadataKeys.FormatVersion]);

        // The model's defaults are a generator's defaults.
        using var generator = model.CreateGenerator();
        Assert.AreEqual(12, generator.Options.MaxNewTokens);
        Assert.AreEqual(7, generator.Options.TopK);

        // A path to the .onnx file loads the same model.
        using var byFile = GptModel.Load(model.ModelPath);
        Assert.AreEqual(config, byFile.Config);
    }

    [TestMethod]
    public void ProfiledModelWritesItsRunsUnderThePrefixWhenDisposed()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 49);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.Export(weights, tmp);
        string prefix = Path.Combine(tmp.Sub("profile"), "run");
        Directory.CreateDirectory(Path.GetDirectoryName(prefix)!);
        using (var model = GptModel.Load(folder, new SessionSettings { ProfileOutputPrefix = prefix }))
        {
            using var generator = model.CreateGenerator(new GenerationOptions { DoSample = false, MaxNewTokens = 2 });
            generator.Append([1, 2, 3]);
            generator.GenerateNextToken();
        }

        string file = Directory.GetFiles(Path.GetDirectoryName(prefix)!, "run_*.json").Single();
        StringAssert.Contains(File.ReadAllText(file), "\"model_run\"");
    }

    [TestMethod]
    public void LoadsWithProvidersOrWithCallersSessionOptions()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 48);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.Export(weights, tmp);
        using (var model = GptModel.Load(folder, new SessionSettings { Providers = [new CpuProvider(IntraOpThreads: 1)] }))
        {
            Assert.HasCount(1, model.Providers);
            Assert.AreEqual(new CpuProvider(IntraOpThreads: 1), model.Providers[0]);
        }

        using var options = new SessionOptions { IntraOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        using var own = GptModel.Load(folder, options);
        Assert.IsEmpty(own.Providers);
        using var generator = own.CreateGenerator(new GenerationOptions { DoSample = false, MaxNewTokens = 4 });
        generator.Append([1, 2, 3]);
        CollectionAssert.AreEqual(TestModels.ReferenceGreedy(weights, [1, 2, 3], 4), generator.GenerateAll()[0].NewIds.ToArray());

        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder, new SessionSettings { Providers = [new CudaProvider(0)] }));
        StringAssert.Contains(e.Message, "CUDA");
    }

    [TestMethod]
    public void MissingModelFileNamesThePath()
    {
        using var tmp = TestPaths.NewTemp();
        string file = tmp.Sub("nope.onnx");
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(file));
        StringAssert.Contains(e.Message, file);
        StringAssert.Contains(e.Message, "does not exist");

        Directory.CreateDirectory(tmp.Sub("empty"));
        e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(tmp.Sub("empty")));
        StringAssert.Contains(e.Message, tmp.Sub("empty"));
        StringAssert.Contains(e.Message, ModelFolder.ModelFile);
    }

    [TestMethod]
    [DataRow("garbage")]
    [DataRow("truncated")]
    public void CorruptModelFileNamesThePath(string how)
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 42);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.Export(weights, tmp);
        string file = Path.Combine(folder, ModelFolder.ModelFile);
        var bytes = File.ReadAllBytes(file);
        File.WriteAllBytes(file, how == "garbage" ? "this is not an ONNX model"u8.ToArray() : bytes[..(bytes.Length / 2)]);

        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder));
        StringAssert.Contains(e.Message, Path.GetFullPath(file));
    }

    [TestMethod]
    public void ForeignModelWithoutMetadataOrConfigSaysWhatIsMissing()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 43);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.WriteForeign(weights, tmp, GraphOptions.Portable, configJson: null);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder));
        StringAssert.Contains(e.Message, "config.json");
        StringAssert.Contains(e.Message, "genai_config.json");
        StringAssert.Contains(e.Message, MetadataKeys.Config);
        StringAssert.Contains(e.Message, "context length");
    }

    [TestMethod]
    public void ForeignModelReadsGenAiConfig()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 44);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.WriteForeign(weights, tmp, GraphOptions.Portable, configJson: null);
        File.Move(Path.Combine(folder, ModelFolder.ModelFile), Path.Combine(folder, "decoder.onnx"));
        File.WriteAllText(Path.Combine(folder, "genai_config.json"), """
            {
              "model": {
                "bos_token_id": 3, "eos_token_id": [4], "pad_token_id": 4, "type": "gpt2", "vocab_size": 53, "context_length": 24,
                "decoder": { "filename": "decoder.onnx", "head_size": 8, "hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 2 }
              },
              "search": { "do_sample": false, "top_k": 5, "temperature": 0.5 }
            }
            """);
        using var model = GptModel.Load(folder);
        Assert.AreEqual(24, model.Config.ContextLength);
        Assert.AreEqual(16, model.Config.Width);
        Assert.AreEqual(3, model.Config.BosTokenId);
        Assert.AreEqual(4, model.Config.EosTokenId);
        Assert.IsFalse(model.GenerationDefaults.DoSample);
        Assert.AreEqual(5, model.GenerationDefaults.TopK);
        Assert.AreEqual(0.5, model.GenerationDefaults.Temperature);
        StringAssert.EndsWith(model.ModelPath, "decoder.onnx");
        StringAssert.EndsWith(model.ConfigSource, "genai_config.json");
    }

    [TestMethod]
    public void ConfigThatDoesNotMatchTheGraphIsRefused()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 45);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.WriteForeign(weights, tmp, GraphOptions.Portable, (weights.Config with { Layers = 3 }).ToJson());
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder));
        StringAssert.Contains(e.Message, "n_layer is 3");
        StringAssert.Contains(e.Message, "2 layers");

        File.WriteAllText(Path.Combine(folder, ModelFolder.ConfigFile), (weights.Config with { VocabSize = 60 }).ToJson());
        e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder));
        StringAssert.Contains(e.Message, "vocab_size is 60");
        StringAssert.Contains(e.Message, "53 logits");
    }

    [TestMethod]
    public void UseAfterDisposeThrowsObjectDisposed()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 46);
        using var tmp = TestPaths.NewTemp();
        var model = GptModel.Load(TestModels.Export(weights, tmp));
        model.Dispose();
        model.Dispose();   // twice is fine
        Assert.ThrowsExactly<ObjectDisposedException>(() => model.CreateGenerator());
        Assert.IsTrue(model.IsDisposed);
    }

    [TestMethod]
    public void GeneratorsOnDisposedModelStopWithObjectDisposed()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 47);
        using var tmp = TestPaths.NewTemp();
        var model = GptModel.Load(TestModels.Export(weights, tmp));
        using var generator = model.CreateGenerator(new GenerationOptions { DoSample = false });
        generator.Append([1, 2, 3]);
        generator.GenerateNextToken();
        model.Dispose();
        Assert.ThrowsExactly<ObjectDisposedException>(generator.GenerateNextToken);
    }
}

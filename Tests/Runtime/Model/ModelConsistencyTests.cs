using Google.Protobuf;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Onnx.Proto;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Model;

/// <summary>A folder whose parts disagree is refused when it loads, with one message naming both parts.</summary>
[TestClass]
public sealed class ModelConsistencyTests
{
    private static readonly GptConfig Config = TestWeights.Small() with { BosTokenId = 1, EosTokenId = 2 };

    private static string Export(TempFolder tmp, ExportOptions? options = null) =>
        TestModels.Export(TestWeights.Random(Config, seed: 3), tmp, options: options);

    /// <summary>Rewrites one metadata value of an exported model, as a hand-edited or foreign file would carry it.</summary>
    private static void SetMetadata(string folder, string key, string value)
    {
        string path = Path.Combine(folder, ModelFolder.ModelFile);
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        var entry = model.MetadataProps.FirstOrDefault(p => p.Key == key);
        if (entry is null)
        {
            model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
        }
        else
        {
            entry.Value = value;
        }

        File.WriteAllBytes(path, model.ToByteArray());
    }

    private static string Chars(int n) => string.Concat(Enumerable.Range(0, n).Select(i => (char)('!' + i)));

    [TestMethod]
    public void ATokenizerSmallerThanTheVocabularyIsRefusedAtLoad()
    {
        using var tmp = new TempFolder();
        var small = new TokenizerSpec { Kind = TokenizerSpec.CharKind, Characters = Chars(Config.VocabSize - 3).Select(c => c.ToString()).ToList() };
        string folder = Export(tmp, new ExportOptions { Tokenizer = TokenizerSpec.Gpt2 });
        SetMetadata(folder, MetadataKeys.Tokenizer, small.ToJson());
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose());
        StringAssert.Contains(e.Message, $"the char tokenizer has {Config.VocabSize - 3} tokens but");
        StringAssert.Contains(e.Message, $"says vocab_size is {Config.VocabSize}; the model could generate ids {Config.VocabSize - 3}..{Config.VocabSize - 1}, which have no text");

        // The exporter itself refuses to record such a pair.
        var x = Assert.ThrowsExactly<OnnxGptException>(() => new ExportOptions { Tokenizer = small }.Validate(tmp.Sub("n"), Config));
        StringAssert.Contains(x.Message, $"has {Config.VocabSize - 3} characters but the model's vocabulary has {Config.VocabSize} tokens");
    }

    [TestMethod]
    public void AMatchingTokenizerLoads()
    {
        using var tmp = new TempFolder();
        var spec = new TokenizerSpec { Kind = TokenizerSpec.CharKind, Characters = Chars(Config.VocabSize).Select(c => c.ToString()).ToList() };
        using var model = GptModel.Load(Export(tmp, new ExportOptions { Tokenizer = spec }));
        Assert.AreEqual(Config.VocabSize, model.Tokenizer!.VocabularySize);
    }

    [TestMethod]
    [DataRow("""{"max_new_tokens":-1}""", "'max_new_tokens' must be 0 or more; found -1")]
    [DataRow("""{"top_p":0}""", "'top_p' must be in (0, 1]")]
    [DataRow("""{"temperature":-2}""", "'temperature' must be a finite number")]
    [DataRow("""{"max_new_tokens":5,"max_new_tokens":6}""", "key 'max_new_tokens' appears twice")]
    public void BadGenerationDefaultsInTheMetadataAreRefusedAtLoad(string json, string expected)
    {
        using var tmp = new TempFolder();
        string folder = Export(tmp);
        SetMetadata(folder, MetadataKeys.Generation, json);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose());
        StringAssert.Contains(e.Message, MetadataKeys.Generation);
        StringAssert.Contains(e.Message, expected);
    }

    [TestMethod]
    public void ADuplicateKeyInTheConfigMetadataIsAClearError()
    {
        using var tmp = new TempFolder();
        string folder = Export(tmp);
        SetMetadata(folder, MetadataKeys.Config, """{"vocab_size":53,"vocab_size":53,"n_positions":24,"n_embd":16,"n_layer":2,"n_head":2}""");
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose());
        StringAssert.Contains(e.Message, $"(metadata '{MetadataKeys.Config}'): key 'vocab_size' appears twice");
    }

    [TestMethod]
    public void SpecialIdsInTheMetadataMustAgreeWithTheConfig()
    {
        using var tmp = new TempFolder();
        string folder = Export(tmp);
        SetMetadata(folder, MetadataKeys.EosTokenId, "7");
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose()).Message,
            "metadata 'eos_token_id' is 7 but");
        SetMetadata(folder, MetadataKeys.EosTokenId, "5000");
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose()).Message,
            $"metadata 'eos_token_id' is '5000'; expected a token id in [0, {Config.VocabSize})");
    }

    [TestMethod]
    [DataRow(ModelFolder.ConfigFile)]
    [DataRow(ModelFolder.GenAiConfigFile)]
    public void AStaleConfigFileBesideTheModelIsRefused(string file)
    {
        using var tmp = new TempFolder();
        string folder = Export(tmp);
        string other = TestModels.Export(TestWeights.Random(Config with { Layers = 3 }, seed: 3), tmp, name: "other");
        File.Copy(Path.Combine(other, file), Path.Combine(folder, file), overwrite: true);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose());
        // Each file is quoted in its own field names.
        string field = file == ModelFolder.GenAiConfigFile ? "model.decoder.num_hidden_layers" : "n_layer";
        StringAssert.Contains(e.Message, $"{file} says {field} is 3 but");
        StringAssert.Contains(e.Message, "(metadata 'onnxgpt.config') says n_layer is 2; the folder's files describe different models");
    }
}

using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;
using OnnxGpt.Cli.Serving;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter.Onnx.Proto;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Tokenization;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Fuzz;

/// <summary>
/// The project's own fuzzing, in the suite: a few hundred seeded mutations per loader, each accepted or a clean
/// <see cref="OnnxGptException"/> (a 400 for the server's parser), none hanging or allocating past the bound.
/// <c>build.ps1 fuzz</c> runs the same with many more cases (ONNXGPT_FUZZ_SCALE).
/// </summary>
[TestClass]
[TestCategory("Fuzz")]
public sealed class LoaderMutationTests
{
    private static TempFolder? s_tmp;
    private static string s_nanoModel = "";

    [ClassInitialize]
    public static void Initialize(TestContext _)
    {
        s_tmp = new TempFolder();
        s_nanoModel = s_tmp.Sub("nano");
        GptExporter.Export(SeededInit.Create(GptPresets.Get("nano"), 1), s_nanoModel, new ExportOptions
        {
            Tokenizer = new TokenizerSpec { Kind = TokenizerSpec.CharKind, Characters = CharList(GptPresets.Get("nano").VocabSize) },
        });
    }

    [ClassCleanup]
    public static void Cleanup() => s_tmp?.Dispose();

    private static List<string> CharList(int n) => [.. Enumerable.Range(0, n).Select(i => char.ConvertFromUtf32(0x100 + i))];

    /// <summary>A scratch folder per case, so cases never see each other's files.</summary>
    private static string CaseFolder() => Directory.CreateDirectory(s_tmp!.Sub("case-" + Guid.NewGuid().ToString("N"))).FullName;

    [TestMethod]
    public void Safetensors()
    {
        var tensors = new Dictionary<string, OnnxGpt.Exporter.Model.Tensor>
        {
            ["a"] = new([2, 3], [1, 2, 3, 4, 5, 6]),
            ["b.weight"] = new([4], [0.5f, -1, 2, 8]),
        };
        string seedFile = s_tmp!.Sub("seed.safetensors");
        SafetensorsWriter.Write(seedFile, tensors, new Dictionary<string, string> { ["format"] = "pt" }, SafetensorsDType.F16);
        var report = MutationFuzzer.Run("safetensors", File.ReadAllBytes(seedFile), bytes =>
        {
            string path = Path.Combine(CaseFolder(), "model.safetensors");
            File.WriteAllBytes(path, bytes);
            using var file = SafetensorsFile.Open(path);
            foreach (var entry in file.Entries)
            {
                if (entry.DType.ConvertsToFloat32())
                {
                    file.ReadTensor(entry.Name);
                }
            }
        }, MutationFuzzer.Cases(300), seed: 11);
        MutationFuzzer.AssertHolds(report);
    }

    [TestMethod]
    public void HuggingFaceConfig()
    {
        var report = MutationFuzzer.Run("HF config.json", File.ReadAllBytes(Path.Combine(TestPaths.TinyRandomGpt2, "config.json")), bytes =>
        {
            string path = Path.Combine(CaseFolder(), "config.json");
            File.WriteAllBytes(path, bytes);
            using (var document = JsonInput.ReadFile(path))
            {
                StatedShape.FromHfFields(JsonInput.Root(document, path));   // what a foreign folder's config.json is read for
            }

            var config = GptConfig.FromFile(path);
            _ = OnnxGpt.Exporter.Model.GptWeights.ExpectedShapes(config).Count;   // what export sizes from it
        }, MutationFuzzer.Cases(400), seed: 12);
        MutationFuzzer.AssertHolds(report);
    }

    [TestMethod]
    public void ShardedIndex()
    {
        var config = new GptConfig { VocabSize = 11, ContextLength = 7, Width = 8, Layers = 1, Heads = 2 };
        var weights = SeededInit.Create(config, 3);
        string source = s_tmp!.Sub("sharded");
        Directory.CreateDirectory(source);
        File.WriteAllText(Path.Combine(source, HfCheckpoint.ConfigFile), config.ToJson());
        var names = weights.Names.ToList();
        var map = new JsonObject();
        for (int s = 0; s < 2; s++)
        {
            string shard = $"model-0000{s + 1}-of-00002.safetensors";
            var part = names.Where((_, i) => i % 2 == s).ToList();
            SafetensorsWriter.Write(Path.Combine(source, shard), part.Select(n => KeyValuePair.Create(n, weights[n])), null, SafetensorsDType.F32);
            foreach (var n in part)
            {
                map[n] = shard;
            }
        }

        byte[] index = Encoding.UTF8.GetBytes(new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = 1 }, ["weight_map"] = map }.ToJsonString());
        File.WriteAllBytes(Path.Combine(source, HfCheckpoint.IndexFile), index);
        HfCheckpoint.Load(source);
        var report = MutationFuzzer.Run("sharded index", index, bytes =>
        {
            File.WriteAllBytes(Path.Combine(source, HfCheckpoint.IndexFile), bytes);
            HfCheckpoint.Load(source);
        }, MutationFuzzer.Cases(250), seed: 13);
        MutationFuzzer.AssertHolds(report);
    }

    [TestMethod]
    [DataRow("tokenizer.json")]
    [DataRow("vocab.json")]
    [DataRow("merges.txt")]
    public void TokenizerFiles(string file)
    {
        string source = TestPaths.TinyRandomGpt2;
        var spec = file == "tokenizer.json"
            ? new TokenizerSpec { Kind = TokenizerSpec.TokenizerJsonKind, Files = ["tokenizer.json"] }
            : new TokenizerSpec { Kind = TokenizerSpec.BpeKind, Files = ["vocab.json", "merges.txt"] };
        var report = MutationFuzzer.Run($"tokenizer {file}", File.ReadAllBytes(Path.Combine(source, file)), bytes =>
        {
            string folder = CaseFolder();
            foreach (var name in spec.Files!)
            {
                File.Copy(Path.Combine(source, name), Path.Combine(folder, name));
            }

            File.WriteAllBytes(Path.Combine(folder, file), bytes);
            var tokenizer = TokenizerFactory.Create(spec, folder);   // loading is what is fuzzed: it must accept or refuse cleanly
            try
            {
                tokenizer.Decode(tokenizer.Encode("Hello world, 🙂!"));
            }
            catch (OnnxGptException)
            {
                // A loaded vocabulary may not cover the text (this one lacks some bytes): a clean refusal of the text, not of the file.
            }
        }, MutationFuzzer.Cases(file == "tokenizer.json" ? 150 : 120), seed: 14);
        MutationFuzzer.AssertHolds(report);
    }

    [TestMethod]
    public void TokenizerSpecFile()
    {
        byte[] spec = Encoding.UTF8.GetBytes("""{"kind":"bpe","files":["vocab.json","merges.txt"]}""");
        var report = MutationFuzzer.Run("tokenizer_spec.json", spec, bytes =>
        {
            string folder = CaseFolder();
            File.WriteAllBytes(Path.Combine(folder, TokenizerDetection.SpecFile), bytes);
            File.Copy(Path.Combine(TestPaths.TinyRandomGpt2, "vocab.json"), Path.Combine(folder, "vocab.json"));
            File.Copy(Path.Combine(TestPaths.TinyRandomGpt2, "merges.txt"), Path.Combine(folder, "merges.txt"));
            var found = TokenizerDetection.Detect(folder, 1000);
            if (found is not null)
            {
                new ExportOptions { Tokenizer = found, TokenizerSourceFolder = folder }.Validate(Path.Combine(folder, "out"));
                TokenizerFactory.Create(found, folder);
            }
        }, MutationFuzzer.Cases(200), seed: 15);
        MutationFuzzer.AssertHolds(report);
    }

    [TestMethod]
    public void OnnxModelFile()
    {
        byte[] model = File.ReadAllBytes(Path.Combine(s_nanoModel, ModelFolder.ModelFile));
        var report = MutationFuzzer.Run("ONNX model (inspect)", model, bytes =>
        {
            string folder = CaseFolder();
            File.WriteAllBytes(Path.Combine(folder, ModelFolder.ModelFile), bytes);
            ModelInspector.Open(folder).Summary();
        }, MutationFuzzer.Cases(200), seed: 16);
        MutationFuzzer.AssertHolds(report);
    }

    [TestMethod]
    [DataRow(MetadataKeys.Config)]
    [DataRow(MetadataKeys.Tokenizer)]
    [DataRow(MetadataKeys.Generation)]
    public void OnnxMetadata(string key)
    {
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(s_nanoModel, ModelFolder.ModelFile)));
        var entry = proto.MetadataProps.First(p => p.Key == key);
        var report = MutationFuzzer.Run($"metadata {key}", Encoding.UTF8.GetBytes(entry.Value), bytes =>
        {
            string folder = CaseFolder();
            entry.Value = Encoding.UTF8.GetString(bytes);   // what a metadata string can hold: any text
            File.WriteAllBytes(Path.Combine(folder, ModelFolder.ModelFile), proto.ToByteArray());
            using var model = GptModel.Load(folder);
        }, MutationFuzzer.Cases(60), seed: 17);
        MutationFuzzer.AssertHolds(report);
    }

    [TestMethod]
    public void GenAiConfig()
    {
        byte[] genai = File.ReadAllBytes(Path.Combine(s_nanoModel, ModelFolder.GenAiConfigFile));
        var report = MutationFuzzer.Run("genai_config.json", genai, bytes =>
        {
            string folder = CaseFolder();
            File.WriteAllBytes(Path.Combine(folder, ModelFolder.GenAiConfigFile), bytes);
            GenAiDescription.Read(Path.Combine(folder, ModelFolder.GenAiConfigFile));
        }, MutationFuzzer.Cases(400), seed: 18);
        MutationFuzzer.AssertHolds(report);
    }

    [TestMethod]
    public void GenAiGpt2ConfigWithDeclaredNames()
    {
        using var tmp = TestPaths.NewTemp();
        string source = ForeignFolders.GenAiGpt2(tmp, renamed: true);
        byte[] genai = File.ReadAllBytes(Path.Combine(source, ModelFolder.GenAiConfigFile));
        var report = MutationFuzzer.Run("genai_config.json (gpt2, declared names)", genai, bytes =>
        {
            string folder = CaseFolder();
            File.WriteAllBytes(Path.Combine(folder, ModelFolder.GenAiConfigFile), bytes);
            GenAiDescription.Read(Path.Combine(folder, ModelFolder.GenAiConfigFile));
        }, MutationFuzzer.Cases(300), seed: 20);
        MutationFuzzer.AssertHolds(report);
    }

    [TestMethod]
    public void GenerationConfig()
    {
        byte[] seed = Encoding.UTF8.GetBytes("""
            {"bos_token_id": 98, "eos_token_id": [98, 97], "do_sample": true, "temperature": 0.7, "top_k": 40, "top_p": 0.9,
             "repetition_penalty": 1.1, "max_new_tokens": 32, "pad_token_id": 98}
            """);
        var report = MutationFuzzer.Run("generation_config.json", seed, bytes =>
        {
            string path = Path.Combine(CaseFolder(), "generation_config.json");
            File.WriteAllBytes(path, bytes);
            HfGenerationConfig.Read(path);
        }, MutationFuzzer.Cases(300), seed: 21);
        MutationFuzzer.AssertHolds(report);
    }

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void ServerRequestParser(bool chat)
    {
        byte[] body = Encoding.UTF8.GetBytes(chat
            ? """{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi 🙂"}]}],"max_tokens":5,"temperature":0.7,"top_p":0.9,"top_k":4,"stop":["\n"],"seed":3,"stream":true,"stream_options":{"include_usage":true},"repetition_penalty":1.1}"""
            : """{"model":"m","prompt":["Once upon"],"max_tokens":5,"temperature":0,"echo":true,"presence_penalty":0.5,"n":1,"logprobs":null}""");
        var report = MutationFuzzer.Run($"server {(chat ? "chat" : "completion")} request", body, bytes =>
        {
            using var document = OnnxGpt.Contracts.JsonInput.Parse(bytes, "the request body");
            OpenAiRequest.Read(document.RootElement, chat, maxTokensLimit: 64, defaultMaxTokens: 16);
        }, MutationFuzzer.Cases(400), seed: 19, isClean: e => e is OnnxGptException || e is OpenAiError { Status: 400 });
        MutationFuzzer.AssertHolds(report);
    }
}

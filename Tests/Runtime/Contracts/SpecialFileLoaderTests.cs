using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Tokenization;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Contracts;

/// <summary>Every loader, given a FIFO under one of its file names, ends in a clear error within seconds (it used to hang).</summary>
[TestClass]
public sealed class SpecialFileLoaderTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(20);

    private static string CopyOf(TempFolder temp, string source)
    {
        string folder = temp.Sub("m");
        Directory.CreateDirectory(folder);
        foreach (var file in Directory.GetFiles(source))
        {
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        }

        return folder;
    }

    [TestMethod]
    [DataRow("config.json")]
    [DataRow("model.safetensors")]
    public void CheckpointFilesThatAreFifos(string name)
    {
        using var temp = new TempFolder();
        string folder = CopyOf(temp, TestPaths.TinyRandomGpt2);
        HostileFiles.MakeFifo(Path.Combine(folder, name));
        var e = HostileFiles.FailsWithin(Limit, () => HfCheckpoint.Load(folder), $"loading a checkpoint whose {name} is a FIFO");
        StringAssert.Contains(e.Message, $"{name}: expected a regular");
        StringAssert.Contains(e.Message, "found a FIFO");
    }

    [TestMethod]
    [DataRow("index")]
    [DataRow("shard")]
    public void ShardedCheckpointFilesThatAreFifos(string which)
    {
        using var temp = new TempFolder();
        string folder = CopyOf(temp, TestPaths.TinyRandomGpt2);
        File.Move(Path.Combine(folder, HfCheckpoint.WeightsFile), Path.Combine(folder, "model-00001-of-00001.safetensors"));
        using (var shard = SafetensorsFile.Open(Path.Combine(folder, "model-00001-of-00001.safetensors")))
        {
            var map = new System.Text.Json.Nodes.JsonObject();
            foreach (var entry in shard.Entries)
            {
                map[entry.Name] = "model-00001-of-00001.safetensors";
            }

            File.WriteAllText(Path.Combine(folder, HfCheckpoint.IndexFile), new System.Text.Json.Nodes.JsonObject { ["weight_map"] = map }.ToJsonString());
        }

        HfCheckpoint.Load(folder);   // the sharded folder itself loads
        HostileFiles.MakeFifo(Path.Combine(folder, which == "index" ? HfCheckpoint.IndexFile : "model-00001-of-00001.safetensors"));
        var e = HostileFiles.FailsWithin(Limit, () => HfCheckpoint.Load(folder), $"loading a checkpoint whose {which} is a FIFO");
        StringAssert.Contains(e.Message, "found a FIFO");
    }

    [TestMethod]
    [DataRow("tokenizer.json")]
    [DataRow("vocab.json")]
    [DataRow("merges.txt")]
    public void TokenizerFilesThatAreFifos(string name)
    {
        using var temp = new TempFolder();
        string folder = CopyOf(temp, TestPaths.TinyRandomGpt2);
        HostileFiles.MakeFifo(Path.Combine(folder, name));
        var spec = name == "tokenizer.json"
            ? new TokenizerSpec { Kind = TokenizerSpec.TokenizerJsonKind, Files = ["tokenizer.json"] }
            : new TokenizerSpec { Kind = TokenizerSpec.BpeKind, Files = ["vocab.json", "merges.txt"] };
        var e = HostileFiles.FailsWithin(Limit, () => TokenizerFactory.Create(spec, folder), $"a tokenizer whose {name} is a FIFO");
        StringAssert.Contains(e.Message, "found a FIFO");
    }

    [TestMethod]
    [DataRow("model.onnx")]
    [DataRow("genai_config.json")]
    [DataRow("model.onnx.data")]
    public void ModelFolderFilesThatAreFifos(string name)
    {
        using var temp = new TempFolder();
        string folder = temp.Sub("m");
        var weights = SeededInit.Create(GptPresets.Get("nano"), 1);
        OnnxGpt.Exporter.GptExporter.Export(weights, folder);
        HostileFiles.MakeFifo(Path.Combine(folder, name));
        var e = HostileFiles.FailsWithin(Limit, () => GptModel.Load(folder).Dispose(), $"loading a model whose {name} is a FIFO");
        StringAssert.Contains(e.Message, "found a FIFO");
    }

    [TestMethod]
    public void AGenAiConfigNamingAModelOutsideTheFolderIsRefused()
    {
        using var temp = new TempFolder();
        var weights = SeededInit.Create(GptPresets.Get("nano"), 1);
        OnnxGpt.Exporter.GptExporter.Export(weights, temp.Sub("other"));
        string folder = temp.Sub("m");
        OnnxGpt.Exporter.GptExporter.Export(weights, folder);
        foreach (var target in new[] { "../other/model.onnx", Path.Combine(temp.Sub("other"), "model.onnx") })
        {
            string genai = Path.Combine(folder, ModelFolder.GenAiConfigFile);
            var root = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(genai))!;
            root["model"]!["decoder"]!["filename"] = target;
            File.WriteAllText(genai, root.ToJsonString());
            var e = Assert.ThrowsExactly<OnnxGptException>(() => GptModel.Load(folder).Dispose());
            StringAssert.Contains(e.Message, $"$.model.decoder.filename names '{target}', which is refused");
        }
    }
}

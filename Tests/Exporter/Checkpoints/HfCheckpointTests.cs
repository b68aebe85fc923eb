using System.Text.Json.Nodes;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Exporter.Checkpoints;

[TestClass]
public sealed class HfCheckpointTests
{
    private static readonly GptConfig Small = new() { VocabSize = 11, ContextLength = 7, Width = 8, Layers = 2, Heads = 2, BosTokenId = 0, EosTokenId = 0 };

    private static uint[] Bits(Tensor t) => t.Data.Select(BitConverter.SingleToUInt32Bits).ToArray();

    private static void AssertSameWeights(GptWeights expected, GptWeights actual)
    {
        Assert.AreEqual(expected.Config, actual.Config);
        CollectionAssert.AreEqual(expected.Names.ToArray(), actual.Names.ToArray());
        foreach (var name in expected.Names)
        {
            CollectionAssert.AreEqual(expected[name].Shape, actual[name].Shape, name);
            CollectionAssert.AreEqual(Bits(expected[name]), Bits(actual[name]), name);
        }
    }

    /// <summary>Writes a checkpoint folder by hand: a config and one safetensors file holding exactly these tensors.</summary>
    private static void WriteFolder(string folder, GptConfig config, IEnumerable<KeyValuePair<string, Tensor>> tensors, SafetensorsDType dtype = SafetensorsDType.F32)
    {
        File.WriteAllText(Path.Combine(folder, HfCheckpoint.ConfigFile), config.ToJson());
        SafetensorsWriter.Write(Path.Combine(folder, HfCheckpoint.WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" }, dtype);
    }

    private static List<KeyValuePair<string, Tensor>> TensorsOf(GptWeights w) => w.Names.Select(n => KeyValuePair.Create(n, w[n])).ToList();

    private static OnnxGptException LoadFails(GptConfig config, IEnumerable<KeyValuePair<string, Tensor>> tensors)
    {
        using var temp = new TempFolder();
        WriteFolder(temp.Path, config, tensors);
        return Assert.ThrowsExactly<OnnxGptException>(() => HfCheckpoint.Load(temp.Path));
    }

    [TestMethod]
    public void LoadsTheRealTinyRandomGpt2()
    {
        var w = HfCheckpoint.Load(TestPaths.TinyRandomGpt2);
        var c = w.Config;
        Assert.AreEqual((1000, 512, 32, 5, 4, 128), (c.VocabSize, c.ContextLength, c.Width, c.Layers, c.Heads, c.FeedForwardWidth));
        Assert.IsNull(c.InnerWidth, "n_inner: null");
        Assert.IsTrue(c.TiedHead);
        Assert.AreEqual(Activation.GeluNew, c.Activation);
        Assert.IsFalse(w.Contains(TensorNames.LmHead));
        Assert.AreSame(w[TensorNames.Wte], w.Head);
        // Reference bits read from the file with Python's struct module.
        CollectionAssert.AreEqual(new uint[] { 3165199309, 1011666657, 3169634114 }, Bits(w[TensorNames.Wte]).Take(3).ToArray());
        CollectionAssert.AreEqual(new[] { 32, 96 }, w["transformer.h.0.attn.c_attn.weight"].Shape);
        Assert.AreEqual(1f, w["transformer.ln_f.weight"].Data[0]);
    }

    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void SaveThenLoadGivesTheSameBits(bool tied)
    {
        var weights = SeededInit.Create(Small with { TiedHead = tied, InnerWidth = 12, Activation = Activation.Gelu, LayerNormEpsilon = 1e-6 }, 5);
        using var temp = new TempFolder();
        string folder = Path.Combine(temp.Path, "new", "model"); // created by Save
        HfCheckpoint.Save(weights, folder, new Dictionary<string, string> { ["source"] = "test" });

        using (var file = SafetensorsFile.Open(Path.Combine(folder, HfCheckpoint.WeightsFile)))
        {
            Assert.AreEqual(!tied, file.Contains(TensorNames.LmHead), "lm_head.weight is saved only when untied");
            Assert.AreEqual("pt", file.Metadata["format"], "transformers refuses safetensors without format=pt");
            Assert.AreEqual("test", file.Metadata["source"]);
            Assert.IsTrue(file.Entries.All(e => e.Name.StartsWith("transformer.", StringComparison.Ordinal) || e.Name == TensorNames.LmHead));
        }

        AssertSameWeights(weights, HfCheckpoint.Load(folder));
    }

    [TestMethod]
    public void LoadsTheRealCheckpointResavedAndSharded()
    {
        var original = HfCheckpoint.Load(TestPaths.TinyRandomGpt2);
        using var temp = new TempFolder();
        File.Copy(Path.Combine(TestPaths.TinyRandomGpt2, HfCheckpoint.ConfigFile), temp.Sub(HfCheckpoint.ConfigFile));
        var all = TensorsOf(original);
        var first = all.Take(20).ToList();
        var second = all.Skip(20).ToList();
        SafetensorsWriter.Write(temp.Sub("model-00001-of-00002.safetensors"), first);
        SafetensorsWriter.Write(temp.Sub("model-00002-of-00002.safetensors"), second);
        var map = new JsonObject();
        foreach (var (name, _) in first)
        {
            map[name] = "model-00001-of-00002.safetensors";
        }

        foreach (var (name, _) in second)
        {
            map[name] = "model-00002-of-00002.safetensors";
        }

        File.WriteAllText(temp.Sub(HfCheckpoint.IndexFile), new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = 1 }, ["weight_map"] = map }.ToJsonString());
        AssertSameWeights(original, HfCheckpoint.Load(temp.Path));

        // The index must agree with its shards.
        map[first[0].Key] = "model-00002-of-00002.safetensors";
        File.WriteAllText(temp.Sub(HfCheckpoint.IndexFile), new JsonObject { ["weight_map"] = map.DeepClone() }.ToJsonString());
        var e = Assert.ThrowsExactly<OnnxGptException>(() => HfCheckpoint.Load(temp.Path));
        StringAssert.Contains(e.Message, $"tensor '{first[0].Key}' is mapped to");
        StringAssert.Contains(e.Message, "model-00002-of-00002.safetensors, which does not hold it");

        map.Remove(first[0].Key);
        File.WriteAllText(temp.Sub(HfCheckpoint.IndexFile), new JsonObject { ["weight_map"] = map.DeepClone() }.ToJsonString());
        e = Assert.ThrowsExactly<OnnxGptException>(() => HfCheckpoint.Load(temp.Path));
        StringAssert.Contains(e.Message, $"tensor '{first[0].Key}' is not listed in");
    }

    [TestMethod]
    [DataRow("../model.safetensors")]
    [DataRow("/etc/passwd")]
    [DataRow("")]
    public void ShardNamesMustStayInsideTheFolder(string shard)
    {
        using var temp = new TempFolder();
        File.WriteAllText(temp.Sub(HfCheckpoint.ConfigFile), Small.ToJson());
        File.WriteAllText(temp.Sub(HfCheckpoint.IndexFile), new JsonObject { ["weight_map"] = new JsonObject { [TensorNames.Wte] = shard } }.ToJsonString());
        var e = Assert.ThrowsExactly<OnnxGptException>(() => HfCheckpoint.Load(temp.Path));
        StringAssert.Contains(e.Message, $"$.weight_map['transformer.wte.weight'] names '{shard}', which is refused");
    }

    [TestMethod]
    [DataRow(SafetensorsDType.F16)]
    [DataRow(SafetensorsDType.BF16)]
    public void LoadsHalfPrecisionCheckpoints(SafetensorsDType dtype)
    {
        var weights = SeededInit.Create(Small, 9);
        using var temp = new TempFolder();
        HfCheckpoint.Save(weights, temp.Path, dtype: dtype);
        var loaded = HfCheckpoint.Load(temp.Path);
        Func<float, float> round = dtype == SafetensorsDType.F16
            ? v => (float)(Half)v
            : v => BitConverter.UInt32BitsToSingle((uint)SafetensorsWriter.ToBFloat16(v) << 16);
        foreach (var name in weights.Names)
        {
            CollectionAssert.AreEqual(weights[name].Data.Select(round).ToArray(), loaded[name].Data, name);
        }

        Assert.AreNotEqual(weights[TensorNames.Wte].Data[0], loaded[TensorNames.Wte].Data[0], "the values really went through half precision");
    }

    [TestMethod]
    public void LoadsUnprefixedNamesAndDropsAttentionBuffers()
    {
        // The layout of OpenAI's published gpt2 model.safetensors: GPT2Model names, plus the causal-mask buffers.
        var weights = SeededInit.Create(Small, 3);
        var tensors = TensorsOf(weights).Select(kv => KeyValuePair.Create(kv.Key["transformer.".Length..], kv.Value)).ToList();
        tensors.Add(KeyValuePair.Create("h.0.attn.bias", new Tensor(1, 1, 7, 7)));
        tensors.Add(KeyValuePair.Create("h.1.attn.masked_bias", new Tensor([], [-1e4f])));
        using var temp = new TempFolder();
        WriteFolder(temp.Path, Small, tensors);
        AssertSameWeights(weights, HfCheckpoint.Load(temp.Path));
    }

    [TestMethod]
    public void AnExplicitHeadEqualToWteStaysTied()
    {
        var weights = SeededInit.Create(Small, 4);
        var tensors = TensorsOf(weights);
        tensors.Add(KeyValuePair.Create(TensorNames.LmHead, new Tensor([11, 8], (float[])weights[TensorNames.Wte].Data.Clone())));
        using var temp = new TempFolder();
        WriteFolder(temp.Path, Small, tensors);
        var loaded = HfCheckpoint.Load(temp.Path);
        Assert.IsTrue(loaded.Config.TiedHead);
        Assert.IsFalse(loaded.Contains(TensorNames.LmHead));
        AssertSameWeights(weights, loaded);
    }

    [TestMethod]
    public void AnExplicitHeadThatDiffersUntiesTheConfig()
    {
        var weights = SeededInit.Create(Small, 4);
        var head = (float[])weights[TensorNames.Wte].Data.Clone();
        head[17] += 1;
        var tensors = TensorsOf(weights);
        tensors.Add(KeyValuePair.Create(TensorNames.LmHead, new Tensor([11, 8], head)));
        using var temp = new TempFolder();
        WriteFolder(temp.Path, Small, tensors);
        var loaded = HfCheckpoint.Load(temp.Path);
        Assert.IsFalse(loaded.Config.TiedHead);
        CollectionAssert.AreEqual(head, loaded.Head.Data);
        Assert.AreEqual(Small with { TiedHead = false }, loaded.Config);
    }

    [TestMethod]
    public void AnUntiedConfigNeedsItsHead()
    {
        var e = LoadFails(Small with { TiedHead = false }, TensorsOf(SeededInit.Create(Small, 1)));
        StringAssert.Contains(e.Message, "tensor 'lm_head.weight' is missing; expected shape [11, 8]");
        StringAssert.Contains(e.Message, HfCheckpoint.WeightsFile);
    }

    [TestMethod]
    public void MissingWrongShapeWrongDtypeExtraAndDuplicateTensorsAreNamed()
    {
        var tensors = TensorsOf(SeededInit.Create(Small, 1));

        var e = LoadFails(Small, tensors.Where(kv => kv.Key != "transformer.ln_f.bias"));
        StringAssert.Contains(e.Message, "tensor 'transformer.ln_f.bias' is missing; expected shape [8]");

        e = LoadFails(Small, tensors.Select(kv => kv.Key == "transformer.h.1.attn.c_attn.weight" ? KeyValuePair.Create(kv.Key, new Tensor(24, 8)) : kv));
        StringAssert.Contains(e.Message, "tensor 'transformer.h.1.attn.c_attn.weight' has shape [24, 8], expected [8, 24]");

        e = LoadFails(Small, tensors.Append(KeyValuePair.Create("transformer.h.0.attn.rotary", new Tensor(2))));
        StringAssert.Contains(e.Message, "unexpected tensor(s) 'transformer.h.0.attn.rotary'");

        e = LoadFails(Small, tensors.Append(KeyValuePair.Create("wpe.weight", new Tensor(7, 8))));
        StringAssert.Contains(e.Message, "tensor 'wpe.weight' and tensor 'transformer.wpe.weight'");
        StringAssert.Contains(e.Message, "are both 'transformer.wpe.weight'");
    }

    [TestMethod]
    public void AnIntegerTensorWhereAFloatBelongsIsNamed()
    {
        using var temp = new TempFolder();
        File.WriteAllText(temp.Sub(HfCheckpoint.ConfigFile), Small.ToJson());
        // A one-tensor file whose single tensor is I64: the dtype check comes before any shape check.
        File.WriteAllBytes(temp.Sub(HfCheckpoint.WeightsFile), CheckpointTestFiles.Raw(
            """{"transformer.wpe.weight":{"dtype":"I64","shape":[7,8],"data_offsets":[0,448]}}""", new byte[448]));
        var e = Assert.ThrowsExactly<OnnxGptException>(() => HfCheckpoint.Load(temp.Path));
        StringAssert.Contains(e.Message, "tensor 'transformer.wpe.weight' has dtype I64; expected a floating-point dtype");
    }

    [TestMethod]
    public void MissingFilesAreNamed()
    {
        using var temp = new TempFolder();
        var e = Assert.ThrowsExactly<OnnxGptException>(() => HfCheckpoint.Load(temp.Path));
        StringAssert.Contains(e.Message, "config.json: not found");

        File.WriteAllText(temp.Sub(HfCheckpoint.ConfigFile), Small.ToJson());
        e = Assert.ThrowsExactly<OnnxGptException>(() => HfCheckpoint.Load(temp.Path));
        StringAssert.Contains(e.Message, "no model.safetensors or model.safetensors.index.json");
        StringAssert.Contains(e.Message, "pytorch_model.bin");

        e = Assert.ThrowsExactly<OnnxGptException>(() => HfCheckpoint.Load(temp.Sub("nope")));
        StringAssert.Contains(e.Message, "checkpoint folder not found");
    }
}

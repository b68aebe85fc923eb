using System.Buffers.Binary;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter.Reference;
using OnnxGpt.Runtime.Evaluation;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Exporter.Onnx;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Models;

/// <summary>
/// stories260K, a Llama model trained by someone else, through our exporter and runtime: logits against the
/// reference, and greedy text from BOS, from its llama2.c file and from a Hugging Face layout made of it.
/// </summary>
[TestClass]
public sealed class Stories260KTests
{
    private static readonly long[] Prompt = [1, 403, 407, 261, 378, 11, 395, 336, 261, 433, 477, 342];

    [TestMethod]
    public void PortableLogitsMatchReferenceForPromptAndCachedSteps()
    {
        var weights = Stories260K.Weights;
        using var tmp = TestPaths.NewTemp();
        string folder = Stories260KExport.Folder(tmp, "p");
        using var ort = new OrtGpt(Path.Combine(folder, ModelFolder.ModelFile));
        var expected = ReferenceGpt.Logits(weights, [Prompt]);
        long[][] mask = [Enumerable.Repeat(1L, Prompt.Length).ToArray()];
        long[][] pos = [Enumerable.Range(0, Prompt.Length).Select(i => (long)i).ToArray()];
        var full = ort.Run([Prompt], mask, pos, null, 0);
        GptGraphTests.AssertLogitsEqual(expected, full.Logits, mask, "stories260K portable prompt");

        var step = ort.Run([Prompt[..8]], [mask[0][..8]], [pos[0][..8]], null, 0);
        for (int t = 8; t < Prompt.Length; t++)
        {
            step = ort.Run([[Prompt[t]]], [mask[0][..(t + 1)]], [[t]], step.Present, t);
            LlamaGraphTests.AssertRows([expected[0][t]], step.Logits, 0, 1, 512, 1e-4f, $"stories260K cached step {t}");
        }
    }

    [TestMethod]
    public void FusedLogitsMatchReferenceForBatchPrefillAndInPlaceSteps() =>
        LlamaGraphTests.AssertFusedMatchesReference(Stories260K.Weights, new GraphOptions { Flavor = GraphFlavor.Fused }, 1e-4f);

    [TestMethod]
    [DataRow("portable", "tok512.model")]
    [DataRow("fused", "tok512.model")]
    [DataRow("portable", "tok512.bin")]
    public void GreedyFromBosWritesTheStory(string graph, string tokenizer)
    {
        using var tmp = TestPaths.NewTemp();
        string folder = Stories260KExport.Folder(tmp, "m", Graph(graph), tokenizer);
        using var model = GptModel.Load(folder);
        Assert.AreEqual(1, model.Config.BosTokenId, "from the tokenizer file");
        using var generator = model.CreateGenerator(new GenerationOptions { MaxNewTokens = 40, Temperature = 0 });
        generator.AppendText("");
        var result = generator.GenerateAll()[0];
        StringAssert.StartsWith(result.Text, Stories260K.GreedyStart, $"{graph}: {result.Text}");

        // The same tokens as the reference's greedy decoding.
        var expected = TestModels.ReferenceGreedy(Stories260K.Weights, [1], 20);
        CollectionAssert.AreEqual(expected, generator.GetSequence(0)[1..21].ToArray());
    }

    [TestMethod]
    public void HuggingFaceLayoutGivesTheSameLogitsAndText()
    {
        // stories260K written as a Hugging Face LlamaForCausalLM folder, q/k rows permuted as HF's conversion script does.
        using var tmp = TestPaths.NewTemp();
        var weights = Stories260K.Weights;
        string hf = tmp.Sub("hf");
        WriteHfFolder(weights, hf, SafetensorsDType.BF16, shards: 1);
        var loaded = HfCheckpoint.Load(hf);
        Assert.AreEqual(ModelFamily.Llama, loaded.Config.Family);
        Assert.IsFalse(loaded.Config.RotaryInterleaved, "a Hugging Face Llama rotates halves");
        Assert.AreEqual(4, loaded.Config.KvHeads);

        string folder = Stories260KExport.Folder(tmp, "from-hf", weights: loaded);
        using var model = GptModel.Load(folder);
        using var generator = model.CreateGenerator(new GenerationOptions { MaxNewTokens = 40, Temperature = 0 });
        generator.AppendText("");
        StringAssert.StartsWith(generator.GenerateAll()[0].Text, Stories260K.GreedyStart);

        // Float32 shards: the same logits as the llama2.c export, to 1e-4.
        string shardedHf = tmp.Sub("hf-sharded");
        WriteHfFolder(weights, shardedHf, SafetensorsDType.F32, shards: 3);
        var exact = HfCheckpoint.Load(shardedHf);
        using var a = new OrtGpt(Path.Combine(Stories260KExport.Folder(tmp, "bin"), ModelFolder.ModelFile));
        using var b = new OrtGpt(Path.Combine(Stories260KExport.Folder(tmp, "hf32", weights: exact), ModelFolder.ModelFile));
        long[][] mask = [Enumerable.Repeat(1L, Prompt.Length).ToArray()];
        long[][] pos = [Enumerable.Range(0, Prompt.Length).Select(i => (long)i).ToArray()];
        var la = a.Run([Prompt], mask, pos, null, 0).Logits;
        var lb = b.Run([Prompt], mask, pos, null, 0).Logits;
        float max = la.Zip(lb).Max(p => Math.Abs(p.First - p.Second));
        Assert.IsLessThanOrEqualTo(1e-4f, max, $"llama2.c export vs Hugging Face layout export: max difference {max}");
    }

    /// <summary>
    /// int4 (MatMulNBits, block 32) against float32 on text the float model writes: 4 sampled stories, each from
    /// &lt;s&gt;, scored by both. The delta is printed (docs/performance.md reports it) and bounded loosely.
    /// </summary>
    [TestMethod]
    public void Int4PerplexityDeltaOnTextItGenerates()
    {
        using var tmp = TestPaths.NewTemp();
        using var fp32 = GptModel.Load(Stories260KExport.Folder(tmp, "fused", Graph("fused")));
        using var int4 = GptModel.Load(Stories260KExport.Folder(tmp, "int4", Graph("int4")));
        var tokens = new List<int>();
        for (ulong seed = 1; seed <= 4; seed++)
        {
            using var generator = fp32.CreateGenerator(new GenerationOptions { MaxNewTokens = 120, Temperature = 1.0, TopK = 0, Seed = seed });
            generator.Append([]);
            generator.GenerateAll();
            tokens.AddRange(generator.GetSequence(0).ToArray());
        }

        var a = Perplexity.Evaluate(fp32, tokens);
        var b = Perplexity.Evaluate(int4, tokens);
        Console.WriteLine($"stories260K on {a.Tokens} tokens it sampled: fp32 {a.MeanNll:F4} nats/token (ppl {a.Perplexity:F3}), " +
            $"int4 {b.MeanNll:F4} (ppl {b.Perplexity:F3}), delta {b.MeanNll - a.MeanNll:+0.0000;-0.0000} nats/token");
        Assert.IsLessThan(0.25, Math.Abs(b.MeanNll - a.MeanNll), "int4 stays close to float32");
        Assert.AreNotEqual(a.MeanNll, b.MeanNll, "the two are different models");
    }

    /// <summary>
    /// A Hugging Face folder by the documented conversion: q_proj/k_proj through
    /// <c>w.view(heads, D/2, 2, in).transpose(1, 2).reshape(out, in)</c>, written here from that formula (not with
    /// the library's converter), so the loader is checked against the documented layout.
    /// </summary>
    private static void WriteHfFolder(GptWeights weights, string folder, SafetensorsDType dtype, int shards)
    {
        var c = weights.Config;
        var tensors = new List<KeyValuePair<string, Tensor>>();
        foreach (var name in weights.Names)
        {
            var t = weights[name];
            int heads = name.EndsWith("q_proj.weight", StringComparison.Ordinal) ? c.Heads : name.EndsWith("k_proj.weight", StringComparison.Ordinal) ? c.KvHeads : 0;
            tensors.Add(KeyValuePair.Create(name, heads == 0 ? t : HfPermute(t, heads)));
        }

        Directory.CreateDirectory(folder);
        var config = new System.Text.Json.Nodes.JsonObject
        {
            ["architectures"] = new System.Text.Json.Nodes.JsonArray("LlamaForCausalLM"), ["model_type"] = "llama",
            ["hidden_size"] = c.Width, ["intermediate_size"] = c.FeedForwardWidth, ["num_hidden_layers"] = c.Layers,
            ["num_attention_heads"] = c.Heads, ["num_key_value_heads"] = c.KvHeads, ["max_position_embeddings"] = c.ContextLength,
            ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 10000.0, ["rope_scaling"] = null, ["tie_word_embeddings"] = true, ["vocab_size"] = c.VocabSize,
            ["hidden_act"] = "silu", ["bos_token_id"] = 1, ["eos_token_id"] = 2, ["torch_dtype"] = dtype == SafetensorsDType.BF16 ? "bfloat16" : "float32",
        };
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        if (shards == 1)
        {
            SafetensorsWriter.Write(Path.Combine(folder, HfCheckpoint.WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" }, dtype);
            return;
        }

        var map = new System.Text.Json.Nodes.JsonObject();
        for (int s = 0; s < shards; s++)
        {
            string file = $"model-{s + 1:D5}-of-{shards:D5}.safetensors";
            var part = tensors.Where((_, i) => i % shards == s).ToList();
            SafetensorsWriter.Write(Path.Combine(folder, file), part, new Dictionary<string, string> { ["format"] = "pt" }, dtype);
            foreach (var (name, _) in part)
            {
                map[name] = file;
            }
        }

        File.WriteAllText(Path.Combine(folder, HfCheckpoint.IndexFile), new System.Text.Json.Nodes.JsonObject { ["weight_map"] = map }.ToJsonString());
    }

    /// <summary>view(heads, D/2, 2, in) → transpose(1, 2) → reshape: new row (h, t, j) is old row (h, j, t).</summary>
    private static Tensor HfPermute(Tensor w, int heads)
    {
        int rows = w.Shape[0], cols = w.Shape[1], half = rows / heads / 2;
        var result = new float[w.Data.Length];
        for (int h = 0; h < heads; h++)
        {
            for (int j = 0; j < half; j++)
            {
                for (int t = 0; t < 2; t++)
                {
                    int oldRow = (h * half + j) * 2 + t;                // index into (heads, D/2, 2)
                    int newRow = (h * 2 + t) * half + j;                // index into (heads, 2, D/2)
                    Array.Copy(w.Data, oldRow * cols, result, newRow * cols, cols);
                }
            }
        }

        return new Tensor(w.Shape, result);
    }

    private static GraphOptions Graph(string name) => name switch
    {
        "fused" => new GraphOptions { Flavor = GraphFlavor.Fused },
        "int4" => new GraphOptions { Flavor = GraphFlavor.Fused, Quantization = WeightQuantization.Int4 },
        _ => GraphOptions.Portable,
    };
}

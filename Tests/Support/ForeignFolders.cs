using System.Text.Json.Nodes;
using Google.Protobuf;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter.Onnx.Proto;
using DataType = OnnxGpt.Exporter.Onnx.Proto.TensorProto.Types.DataType;
using AttributeType = OnnxGpt.Exporter.Onnx.Proto.AttributeProto.Types.AttributeType;

namespace OnnxGpt.Tests.Support;

/// <summary>
/// Model folders as other tools lay them out, built from one real checkpoint (Hugging Face's
/// <c>hf-internal-testing/tiny-random-gpt2</c>, in Tests/Data) by our own graph builder, then reshaped into each
/// convention's names, shapes and files: I/O renamed, past inputs removed (a first-step decoder), two graphs merged
/// under an <c>If</c> on <c>use_cache_branch</c>, the Model Zoo's rank-3 input, an <c>onnx/</c> subfolder; and the
/// side files each convention carries (the checkpoint's own <c>config.json</c>, <c>generation_config.json</c> and
/// tokenizer files, or a <c>genai_config.json</c> written as ONNX Runtime GenAI's test folders write theirs). What
/// each builder follows is said where it is built; the weights are the same in every one.
/// </summary>
internal static class ForeignFolders
{
    private static readonly Lazy<GptWeights> s_weights = new(() => HfCheckpoint.Load(TestPaths.TinyRandomGpt2));

    /// <summary>The checkpoint's weights (vocabulary 1000, context 512, width 32, 5 layers, 4 heads of 8; bos = eos = 98).</summary>
    public static GptWeights Weights => s_weights.Value;

    /// <summary>The checkpoint's own files that Optimum and transformers.js copy beside an export.</summary>
    public static readonly string[] HfSideFiles =
        [ModelFolder.ConfigFile, "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"];

    /// <summary>What GenAI's text tokenizer reads.</summary>
    public static readonly string[] GenAiSideFiles = ["tokenizer.json", "tokenizer_config.json"];

    /// <summary>The weights an Optimum or transformers.js folder is built from, and the side files its export copies beside it.</summary>
    public sealed record Checkpoint(GptWeights Weights, Action<string> WriteSideFiles);

    /// <summary>tiny-random-gpt2, with its own config, generation config and tokenizer files.</summary>
    public static Checkpoint TinyGpt2 => s_tinyGpt2.Value;

    private static readonly Lazy<Checkpoint> s_tinyGpt2 = new(() => new(Weights, folder => CopySideFiles(folder, HfSideFiles)));

    /// <summary>
    /// stories260K (Llama: RMSNorm, rotary positions, SwiGLU, 8 query heads over 4 key/value heads), as Optimum exports
    /// a <c>LlamaForCausalLM</c>: the graph in Hugging Face's Llama I/O (<c>past_key_values.{i}.key</c> of 4 heads), a
    /// Llama <c>config.json</c> (<c>model_type</c> llama, <c>hidden_size</c>, <c>num_key_value_heads</c>,
    /// <c>rms_norm_eps</c>, ...), <c>generation_config.json</c>, and the SentencePiece <c>tokenizer.model</c> with its
    /// <c>tokenizer_config.json</c>. Its weights carry the tokenizer's ids (bos 1, eos 2).
    /// </summary>
    public static Checkpoint Stories => s_stories.Value;

    private static readonly Lazy<Checkpoint> s_stories = new(() => new(
        Stories260K.Weights.WithConfig(Stories260K.Weights.Config with { BosTokenId = 1, EosTokenId = 2 }), WriteLlamaSideFiles));

    private static void WriteLlamaSideFiles(string folder)
    {
        var c = Stories260K.Weights.Config;
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray("LlamaForCausalLM"), ["model_type"] = "llama", ["hidden_act"] = "silu",
            ["hidden_size"] = c.Width, ["intermediate_size"] = c.FeedForwardWidth, ["num_hidden_layers"] = c.Layers,
            ["num_attention_heads"] = c.Heads, ["num_key_value_heads"] = c.KvHeads, ["max_position_embeddings"] = c.ContextLength,
            ["rms_norm_eps"] = c.LayerNormEpsilon, ["rope_theta"] = c.RopeTheta, ["rope_scaling"] = null, ["tie_word_embeddings"] = c.TiedHead,
            ["vocab_size"] = c.VocabSize, ["bos_token_id"] = 1, ["eos_token_id"] = 2, ["torch_dtype"] = "float32",
            ["transformers_version"] = "4.46.3", ["use_cache"] = true,
        };
        File.WriteAllText(Path.Combine(folder, ModelFolder.ConfigFile), config.ToJsonString());
        File.WriteAllText(Path.Combine(folder, "generation_config.json"), """{"bos_token_id": 1, "eos_token_id": 2, "transformers_version": "4.46.3"}""");
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"),
            """{"add_bos_token": true, "add_eos_token": false, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "tokenizer_class": "LlamaTokenizer"}""");
        File.Copy(Stories260K.SentencePieceModel, Path.Combine(folder, "tokenizer.model"));
    }

    // ---- Hugging Face Optimum ----------------------------------------------------------------------------------

    /// <summary>Optimum's single decoder <c>model.onnx</c> (past inputs that may be empty on the first step).</summary>
    public static string OptimumSingle(TempFolder tmp, string name = "optimum-single", Checkpoint? from = null)
    {
        from ??= TinyGpt2;
        string folder = NewFolder(tmp, name);
        Save(OptimumDims(Build(null, from.Weights), withPast: true), Path.Combine(folder, "model.onnx"), from.Weights.Config);
        from.WriteSideFiles(folder);
        return folder;
    }

    /// <summary>
    /// Optimum's <c>decoder_model_merged.onnx</c>: the decoder without past and the decoder with past as the two
    /// branches of one <c>If</c> on the boolean input <c>use_cache_branch</c> (shape [1]), the weights shared in the
    /// outer graph (Optimum's merge deduplicates them), the past inputs present on both steps (dummies on the first).
    /// </summary>
    public static string OptimumMerged(TempFolder tmp, string name = "optimum-merged", string folderInside = "", string fileName = "decoder_model_merged.onnx",
        Checkpoint? from = null)
    {
        from ??= TinyGpt2;
        string folder = NewFolder(tmp, name);
        string target = Path.Combine(folder, folderInside);
        Directory.CreateDirectory(target);
        Save(Merged(from.Weights), Path.Combine(target, fileName), from.Weights.Config);
        from.WriteSideFiles(folder);
        return folder;
    }

    /// <summary>
    /// Optimum's pair: <c>decoder_model.onnx</c> (no past inputs; the attention mask covers the new tokens only;
    /// present outputs) and <c>decoder_with_past_model.onnx</c> (past inputs, mask over past and new).
    /// </summary>
    public static string OptimumPair(TempFolder tmp, string name = "optimum-pair", string folderInside = "", string suffix = "", Checkpoint? from = null)
    {
        from ??= TinyGpt2;
        string folder = NewFolder(tmp, name);
        string target = Path.Combine(folder, folderInside);
        Directory.CreateDirectory(target);
        Save(OptimumDims(WithoutPast(Build(null, from.Weights)), withPast: false), Path.Combine(target, $"decoder_model{suffix}.onnx"), from.Weights.Config);
        Save(OptimumDims(Build(null, from.Weights), withPast: true), Path.Combine(target, $"decoder_with_past_model{suffix}.onnx"), from.Weights.Config);
        from.WriteSideFiles(folder);
        return folder;
    }

    // ---- transformers.js ---------------------------------------------------------------------------------------

    /// <summary>
    /// transformers.js' layout: the graph in <c>onnx/</c> under the name its dtype selects (v3's decoder-only
    /// <c>model</c> + suffix, e.g. <c>model_quantized.onnx</c> for <c>q8</c>; v2-era repositories'
    /// <c>decoder_model_merged_quantized.onnx</c>), the config and tokenizer files above it. The file holds float
    /// weights whatever its name says: the name is the convention, the operators inside are ONNX Runtime's business.
    /// </summary>
    public static string TransformersJs(TempFolder tmp, string fileName, string name = "transformers-js", Checkpoint? from = null)
    {
        from ??= TinyGpt2;
        if (fileName.StartsWith("decoder_model_merged", StringComparison.Ordinal))
        {
            return OptimumMerged(tmp, name, ModelLayoutFolder, fileName, from);
        }

        string folder = NewFolder(tmp, name);
        Directory.CreateDirectory(Path.Combine(folder, ModelLayoutFolder));
        Save(OptimumDims(Build(null, from.Weights), withPast: true), Path.Combine(folder, ModelLayoutFolder, fileName), from.Weights.Config);
        from.WriteSideFiles(folder);
        return folder;
    }

    /// <summary>
    /// transformers.js' <c>onnx/model_fp16.onnx</c> as Optimum's fp16 export makes it: weights, cache and logits in
    /// float16 (our float16 graph, whose last Cast to float32 becomes a Cast to float16 with the logits declared so).
    /// </summary>
    public static string TransformersJsFp16(TempFolder tmp, string name = "transformers-js-fp16")
    {
        string folder = NewFolder(tmp, name);
        Directory.CreateDirectory(Path.Combine(folder, ModelLayoutFolder));
        var graph = OptimumDims(Build(new GraphOptions { Precision = WeightPrecision.Float16 }), withPast: true);
        var cast = graph.Node.Single(n => n.OpType == "Cast" && n.Output[0] == GraphNames.Logits);
        cast.Attribute.Single(a => a.Name == "to").I = (long)DataType.Float16;
        graph.Output.Single(o => o.Name == GraphNames.Logits).Type.TensorType.ElemType = (int)DataType.Float16;
        Save(graph, Path.Combine(folder, ModelLayoutFolder, "model_fp16.onnx"));
        CopySideFiles(folder, HfSideFiles);
        return folder;
    }

    private const string ModelLayoutFolder = "onnx";

    // ---- ONNX Runtime GenAI ------------------------------------------------------------------------------------

    /// <summary>
    /// A GenAI <c>gpt2</c> folder as GenAI's own test models are (test/test_models/hf-internal-testing/
    /// tiny-random-gpt2-fp32): <c>past.onnx</c> in ONNX Runtime's GPT-2 convention (int32 ids, mask and positions,
    /// one stacked <c>past_%d</c> (2, B, H, P, D) per layer), and a <c>genai_config.json</c> giving <c>type</c> gpt2,
    /// the ids, <c>vocab_size</c>, <c>context_length</c> (unless <paramref name="contextLength"/> is false, as in GenAI's
    /// fp16 folder), and of the decoder only <c>filename</c>, <c>num_key_value_heads</c>, <c>head_size</c>,
    /// <c>num_hidden_layers</c>, <c>inputs.past_names</c> and <c>outputs.present_names</c>: no
    /// <c>num_attention_heads</c>, no <c>hidden_size</c>. With <paramref name="renamed"/>, every input and output has
    /// another name, which the config declares.
    /// </summary>
    public static string GenAiGpt2(TempFolder tmp, bool renamed = false, bool contextLength = true, string name = "genai-gpt2")
    {
        string folder = NewFolder(tmp, name);
        var graph = Build(new GraphOptions { IoConvention = IoConventions.OrtGpt2 });
        var inputs = new JsonObject { ["past_names"] = "past_%d" };
        var outputs = new JsonObject { ["present_names"] = "present_%d" };
        if (renamed)
        {
            foreach (var (from, to) in new[] { ("input_ids", "tokens"), ("attention_mask", "mask"), ("position_ids", "positions"), ("logits", "scores") })
            {
                Rename(graph, from, to);
            }

            for (int i = 0; i < Weights.Config.Layers; i++)
            {
                Rename(graph, $"past_{i}", $"cache_in_{i}");
                Rename(graph, $"present_{i}", $"cache_out_{i}");
            }

            inputs = new JsonObject { ["input_ids"] = "tokens", ["attention_mask"] = "mask", ["position_ids"] = "positions", ["past_names"] = "cache_in_%d" };
            outputs = new JsonObject { ["logits"] = "scores", ["present_names"] = "cache_out_%d" };
        }

        Save(graph, Path.Combine(folder, "past.onnx"));
        var c = Weights.Config;
        var model = new JsonObject
        {
            ["type"] = "gpt2",
            ["pad_token_id"] = 98,
            ["bos_token_id"] = 98,
            ["eos_token_id"] = 98,
            ["vocab_size"] = c.VocabSize,
        };
        if (contextLength)
        {
            model["context_length"] = c.ContextLength;
        }

        model["decoder"] = new JsonObject
        {
            ["session_options"] = new JsonObject { ["provider_options"] = new JsonArray() },
            ["filename"] = "past.onnx",
            ["num_key_value_heads"] = c.KvHeads,
            ["head_size"] = c.HeadSize,
            ["num_hidden_layers"] = c.Layers,
            ["inputs"] = inputs,
            ["outputs"] = outputs,
        };
        File.WriteAllText(Path.Combine(folder, ModelFolder.GenAiConfigFile), new JsonObject { ["model"] = model }.ToJsonString());
        CopySideFiles(folder, GenAiSideFiles);
        return folder;
    }

    /// <summary>
    /// A GenAI folder of the generic <c>decoder</c> type whose graph keeps a cache per key and value, every input and
    /// output renamed and declared in <c>model.decoder.inputs</c> / <c>outputs</c> (<c>input_ids</c>,
    /// <c>attention_mask</c>, <c>position_ids</c>, <c>past_key_names</c> <c>cache.%d.k</c>, <c>past_value_names</c>,
    /// <c>logits</c>, <c>present_key_names</c>, <c>present_value_names</c>), with the shape GenAI documents
    /// (<c>hidden_size</c>, <c>head_size</c>, <c>num_attention_heads</c>, <c>num_key_value_heads</c>,
    /// <c>num_hidden_layers</c>) and <c>search.past_present_share_buffer</c> false (present is past and new).
    /// </summary>
    public static string GenAiDecoderRenamed(TempFolder tmp, string name = "genai-decoder")
    {
        string folder = NewFolder(tmp, name);
        var graph = OptimumDims(Build(), withPast: true);
        foreach (var (from, to) in new[] { ("input_ids", "ids"), ("attention_mask", "mask"), ("position_ids", "positions"), ("logits", "scores") })
        {
            Rename(graph, from, to);
        }

        var c = Weights.Config;
        for (int i = 0; i < c.Layers; i++)
        {
            Rename(graph, GraphNames.PastKey(i), $"cache.{i}.k");
            Rename(graph, GraphNames.PastValue(i), $"cache.{i}.v");
            Rename(graph, GraphNames.PresentKey(i), $"new_cache.{i}.k");
            Rename(graph, GraphNames.PresentValue(i), $"new_cache.{i}.v");
        }

        Save(graph, Path.Combine(folder, "decoder.onnx"));
        var config = new JsonObject
        {
            ["model"] = new JsonObject
            {
                ["type"] = "decoder", ["bos_token_id"] = 98, ["eos_token_id"] = new JsonArray(98), ["pad_token_id"] = 98,
                ["vocab_size"] = c.VocabSize, ["context_length"] = c.ContextLength,
                ["decoder"] = new JsonObject
                {
                    ["filename"] = "decoder.onnx",
                    ["session_options"] = new JsonObject { ["provider_options"] = new JsonArray() },
                    ["hidden_size"] = c.Width, ["head_size"] = c.HeadSize, ["num_attention_heads"] = c.Heads,
                    ["num_key_value_heads"] = c.KvHeads, ["num_hidden_layers"] = c.Layers,
                    ["inputs"] = new JsonObject
                    {
                        ["input_ids"] = "ids", ["attention_mask"] = "mask", ["position_ids"] = "positions",
                        ["past_key_names"] = "cache.%d.k", ["past_value_names"] = "cache.%d.v",
                    },
                    ["outputs"] = new JsonObject
                    {
                        ["logits"] = "scores", ["present_key_names"] = "new_cache.%d.k", ["present_value_names"] = "new_cache.%d.v",
                    },
                },
            },
            ["search"] = new JsonObject { ["max_length"] = c.ContextLength, ["past_present_share_buffer"] = false, ["do_sample"] = false },
        };
        File.WriteAllText(Path.Combine(folder, ModelFolder.GenAiConfigFile), config.ToJsonString());
        CopySideFiles(folder, GenAiSideFiles);
        return folder;
    }

    /// <summary>
    /// Our fused export (GroupQueryAttention) with its OnnxGpt metadata removed: what is left is a GenAI <c>llama</c>
    /// folder (<c>genai_config.json</c> with <c>num_attention_heads</c>, <c>num_key_value_heads</c>, <c>head_size</c>,
    /// <c>hidden_size</c>, and the <c>past_key_values.%d.key</c> names), described by that file alone.
    /// </summary>
    public static string GenAiLlama(TempFolder tmp, string name = "genai-llama")
    {
        string folder = Stories260KExport.Folder(tmp, name, new GraphOptions { Flavor = GraphFlavor.Fused });
        string path = Path.Combine(folder, ModelFolder.ModelFile);
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        model.MetadataProps.Clear();
        File.WriteAllBytes(path, model.ToByteArray());
        File.Delete(Path.Combine(folder, ModelFolder.ConfigFile));
        File.Copy(Stories260K.SentencePieceModel, Path.Combine(folder, "tokenizer.model"), overwrite: true);
        foreach (var spec in Directory.EnumerateFiles(folder, TokenizerDetection.SpecFile))
        {
            File.Delete(spec);
        }

        return folder;
    }

    // ---- ONNX Model Zoo ----------------------------------------------------------------------------------------

    /// <summary>
    /// The ONNX Model Zoo's GPT-2 LM head (text/machine_comprehension/gpt-2, <c>gpt2-lm-head-10.onnx</c>, exported by
    /// its GPT2-export.py through <c>torch.onnx.export</c> with <c>input_names=['input1']</c> and PyTorch's default
    /// output names): one int64 input <c>input1</c> of dims <c>input1_dynamic_axes_1..3</c> holding (d0, d1, T) ids,
    /// output <c>output1</c> (d0, d1, T, V) logits, then <c>output2</c>.. one stacked (2, d0·d1, H, T, D) present per
    /// layer, every output declared with the static shape the export traced (d0 = d1 = 1, T = 8); no past inputs, no
    /// mask, positions from 0. With <paramref name="config"/>, the checkpoint's <c>config.json</c> beside it (the zoo
    /// ships none: only a file of GPT-2 124M's shape is recognised without one).
    /// </summary>
    public static string ModelZoo(TempFolder tmp, bool config, string name = "model-zoo")
    {
        string folder = NewFolder(tmp, name);
        Save(ModelZooGraph(Build(new GraphOptions { IoConvention = IoConventions.OrtGpt2, PositionIdsInput = false }), Weights.Config),
            Path.Combine(folder, "gpt2-lm-head-10.onnx"));
        if (config)
        {
            CopySideFiles(folder, [ModelFolder.ConfigFile]);
        }

        return folder;
    }

    /// <summary>
    /// A file with the Model Zoo GPT-2 LM head's exact declared I/O for GPT-2 124M (12 layers, 12 heads of 64, vocabulary
    /// 50257) whose body only makes outputs of the declared types: enough to load and be recognised, not to run.
    /// </summary>
    public static string ModelZooGpt2Declared(TempFolder tmp, string name = "model-zoo-gpt2")
    {
        string folder = NewFolder(tmp, name);
        var graph = new GraphProto { Name = "torch-jit-export" };
        graph.Input.Add(OnnxGraphBuilder.ValueInfo("input1", DataType.Int64, ["input1_dynamic_axes_1", "input1_dynamic_axes_2", "input1_dynamic_axes_3"]));
        AddConstantOutput(graph, "output1", [1, 1, 8, 50257]);
        for (int i = 0; i < 12; i++)
        {
            AddConstantOutput(graph, $"output{i + 2}", [2, 1, 12, 8, 64]);
        }

        Save(graph, Path.Combine(folder, "gpt2-lm-head-10.onnx"));
        return folder;
    }

    // ---- graph surgery -----------------------------------------------------------------------------------------

    /// <summary>The checkpoint's portable graph in the Optimum convention (or <paramref name="options"/>).</summary>
    public static GraphProto Build(GraphOptions? options = null, GptWeights? weights = null) => GptGraph.Build(weights ?? Weights, options ?? GraphOptions.Portable);

    /// <summary>Writes <paramref name="graph"/> as a model file with no OnnxGpt metadata, as another exporter would.</summary>
    /// <param name="graph">The graph.</param>
    /// <param name="path">The file to write.</param>
    /// <param name="config">The portable graph's config, which decides its opset (23 for a Llama's RMSNormalization and RotaryEmbedding); GPT-2's by default.</param>
    public static void Save(GraphProto graph, string path, GptConfig? config = null)
    {
        config ??= Weights.Config;
        var options = GraphOptions.Portable;
        var model = new ModelProto { IrVersion = GptGraph.IrVersionFor(config, options), ProducerName = "tests", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = GptGraph.OpsetFor(config, options) });
        File.WriteAllBytes(path, model.ToByteArray());
    }

    /// <summary>Renames a value of the top-level graph everywhere it appears (inputs, outputs, nodes, initializers).</summary>
    public static void Rename(GraphProto graph, string from, string to)
    {
        foreach (var v in graph.Input.Concat(graph.Output).Concat(graph.ValueInfo).Where(v => v.Name == from))
        {
            v.Name = to;
        }

        foreach (var t in graph.Initializer.Where(t => t.Name == from))
        {
            t.Name = to;
        }

        foreach (var node in graph.Node)
        {
            for (int i = 0; i < node.Input.Count; i++)
            {
                if (node.Input[i] == from)
                {
                    node.Input[i] = to;
                }
            }

            for (int i = 0; i < node.Output.Count; i++)
            {
                if (node.Output[i] == from)
                {
                    node.Output[i] = to;
                }
            }
        }
    }

    /// <summary>
    /// The decoder without past: each past input becomes an empty (B, H, 0, D) tensor (or (2, B, H, 0, D) stacked) made
    /// in the graph from the batch size of the ids, so the graph's inputs are the token inputs alone and its present
    /// outputs hold the new tokens' keys and values.
    /// </summary>
    public static GraphProto WithoutPast(GraphProto graph, string idsName = GraphNames.InputIds)
    {
        var pasts = graph.Input.Where(i => i.Type.TensorType.Shape.Dim.Count >= 4).ToList();
        var nodes = new List<NodeProto>();
        var batch = "/no_past/batch";
        nodes.Add(Node("Shape", [idsName], batch, Attr.Int("start", 0), Attr.Int("end", 1)));
        foreach (var past in pasts)
        {
            var dims = past.Type.TensorType.Shape.Dim;
            bool stacked = dims.Count == 5;
            string empty = past.Name + "/empty";
            Rename(graph, past.Name, empty);
            graph.Input.Remove(graph.Input.First(i => i.Name == empty));
            string tail = Int64(graph, empty + "/tail", [dims[^3].DimValue, 0, dims[^1].DimValue]);
            string shape = empty + "/shape";
            nodes.Add(Node("Concat", stacked ? [Int64(graph, empty + "/head", [2]), batch, tail] : [batch, tail], shape, Attr.Int("axis", 0)));
            nodes.Add(Node("ConstantOfShape", [shape], empty, TensorAttr("value", DataType.Float, BitConverter.GetBytes(0f))));
        }

        InsertFirst(graph, nodes);
        return graph;
    }

    /// <summary>Optimum's merged decoder graph (see <see cref="OptimumMerged"/>).</summary>
    public static GraphProto Merged(GptWeights? weights = null)
    {
        var withPast = OptimumDims(Build(null, weights), withPast: true);
        var noPast = WithoutPast(Build(null, weights));
        var merged = new GraphProto { Name = "merged" };
        merged.Input.AddRange(withPast.Input.Select(i => i.Clone()));
        merged.Input.Add(OnnxGraphBuilder.ValueInfo(GraphNames.UseCacheBranch, DataType.Bool, [1]));
        merged.Output.AddRange(withPast.Output.Select(o => o.Clone()));

        // Weights identical in both branches move to the outer graph, as Optimum's merge leaves them.
        var shared = withPast.Initializer.Where(t => noPast.Initializer.Any(u => u.Name == t.Name && u.Equals(t))).Select(t => t.Name).ToHashSet();
        merged.Initializer.AddRange(withPast.Initializer.Where(t => shared.Contains(t.Name)).Select(t => t.Clone()));
        var branches = new List<GraphProto>();
        foreach (var (branch, tag) in new[] { (withPast, "with_past"), (noPast, "no_past") })
        {
            var g = new GraphProto { Name = tag };
            g.Node.AddRange(branch.Node);
            g.Initializer.AddRange(branch.Initializer.Where(t => !shared.Contains(t.Name)));
            foreach (var output in branch.Output)
            {
                // A branch's outputs are matched by position; their names must not repeat the outer graph's.
                string inner = $"{output.Name}/{tag}";
                var o = output.Clone();
                o.Name = inner;
                g.Output.Add(o);
                foreach (var node in g.Node)
                {
                    for (int i = 0; i < node.Output.Count; i++)
                    {
                        if (node.Output[i] == output.Name)
                        {
                            node.Output[i] = inner;
                        }
                    }

                    for (int i = 0; i < node.Input.Count; i++)
                    {
                        if (node.Input[i] == output.Name)
                        {
                            node.Input[i] = inner;
                        }
                    }
                }
            }

            branches.Add(g);
        }

        var @if = new NodeProto { OpType = "If", Name = "optimum::if" };
        @if.Input.Add(GraphNames.UseCacheBranch);
        @if.Output.AddRange(withPast.Output.Select(o => o.Name));
        @if.Attribute.Add(new AttributeProto { Name = "then_branch", Type = AttributeType.Graph, G = branches[0] });
        @if.Attribute.Add(new AttributeProto { Name = "else_branch", Type = AttributeType.Graph, G = branches[1] });
        merged.Node.Add(@if);
        return merged;
    }

    /// <summary>Optimum's dimension names: the mask over past and new tokens with past, over the new ones alone without.</summary>
    public static GraphProto OptimumDims(GraphProto graph, bool withPast)
    {
        const string total = "past_sequence_length + sequence_length";
        foreach (var v in graph.Input.Concat(graph.Output))
        {
            var dims = v.Type.TensorType.Shape.Dim;
            if (v.Name == GraphNames.AttentionMask)
            {
                dims[1] = new TensorShapeProto.Types.Dimension { DimParam = withPast ? total : GraphNames.SequenceDim };
            }
            else if (v.Name.StartsWith("present.", StringComparison.Ordinal))
            {
                dims[2] = new TensorShapeProto.Types.Dimension { DimParam = total };
            }
        }

        return graph;
    }

    /// <summary>The Model Zoo's I/O around a stacked-cache graph without position ids (see <see cref="ModelZoo"/>).</summary>
    private static GraphProto ModelZooGraph(GraphProto graph, GptConfig c)
    {
        // input1 (d0, d1, T) int64 → the (d0·d1, T) int32 ids the graph takes; the mask all ones; no past.
        const string ids = "/zoo/input_ids", mask = "/zoo/attention_mask";
        Rename(graph, GraphNames.InputIds, ids);
        Rename(graph, GraphNames.AttentionMask, mask);
        graph.Input.Remove(graph.Input.First(i => i.Name == ids));
        graph.Input.Remove(graph.Input.First(i => i.Name == mask));
        WithoutPast(graph, ids);
        graph.Input.Insert(0, OnnxGraphBuilder.ValueInfo("input1", DataType.Int64, ["input1_dynamic_axes_1", "input1_dynamic_axes_2", "input1_dynamic_axes_3"]));
        InsertFirst(graph,
        [
            Node("Flatten", ["input1"], "/zoo/flat", Attr.Int("axis", 2)),
            Node("Cast", ["/zoo/flat"], ids, Attr.Int("to", (long)DataType.Int32)),
            Node("Shape", [ids], "/zoo/ids_shape"),
            Node("ConstantOfShape", ["/zoo/ids_shape"], mask, TensorAttr("value", DataType.Int32, BitConverter.GetBytes(1))),
        ]);

        // The head's (d0·d1·T, V) rows → output1 (d0, d1, T, V), by one Reshape (two in a row, ONNX Runtime would fuse and
        // size from the declared output); present_i → output{i + 2}; shapes declared as the export traced them.
        string vocab = Int64(graph, "/zoo/vocab", [c.VocabSize]);
        var unflatten = graph.Node.Single(n => n.OpType == "Reshape" && n.Output[0] == GraphNames.Logits);
        InsertFirst(graph,
        [
            Node("Shape", ["input1"], "/zoo/input_shape"),
            Node("Concat", ["/zoo/input_shape", vocab], "/zoo/logits_shape", Attr.Int("axis", 0)),
        ]);
        unflatten.Input[1] = "/zoo/logits_shape";
        unflatten.Output[0] = "output1";
        graph.Output.Clear();
        graph.Output.Add(OnnxGraphBuilder.ValueInfo("output1", DataType.Float, [1, 1, 8, c.VocabSize]));
        for (int i = 0; i < c.Layers; i++)
        {
            Rename(graph, GraphNames.StackedPresent(i), $"output{i + 2}");
            graph.Output.Add(OnnxGraphBuilder.ValueInfo($"output{i + 2}", DataType.Float, [2, 1, c.Heads, 8, c.HeadSize]));
        }

        return graph;
    }

    /// <summary>Puts <paramref name="nodes"/> before every other node (they read only the graph's inputs), keeping the order topological.</summary>
    private static void InsertFirst(GraphProto graph, IReadOnlyList<NodeProto> nodes)
    {
        for (int i = nodes.Count - 1; i >= 0; i--)
        {
            graph.Node.Insert(0, nodes[i]);
        }
    }

    private static void AddConstantOutput(GraphProto graph, string name, long[] dims)
    {
        string shape = Int64(graph, name + "/shape", dims);
        graph.Node.Add(Node("ConstantOfShape", [shape], name, TensorAttr("value", DataType.Float, BitConverter.GetBytes(0f))));
        graph.Output.Add(OnnxGraphBuilder.ValueInfo(name, DataType.Float, dims.Cast<object>()));
    }

    private static NodeProto Node(string op, string[] inputs, string output, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = output + "/" + op };
        node.Input.AddRange(inputs);
        node.Output.Add(output);
        node.Attribute.AddRange(attributes);
        return node;
    }

    private static string Int64(GraphProto graph, string name, long[] values)
    {
        var t = new TensorProto { Name = name, DataType = (int)DataType.Int64, RawData = ByteString.CopyFrom(values.SelectMany(BitConverter.GetBytes).ToArray()) };
        t.Dims.Add(values.Length);
        graph.Initializer.Add(t);
        return name;
    }

    private static AttributeProto TensorAttr(string name, DataType type, byte[] bytes)
    {
        var t = new TensorProto { DataType = (int)type, RawData = ByteString.CopyFrom(bytes) };
        t.Dims.Add(1);
        return new AttributeProto { Name = name, Type = AttributeType.Tensor, T = t };
    }

    private static string NewFolder(TempFolder tmp, string name)
    {
        string folder = tmp.Sub(name);
        Directory.CreateDirectory(folder);
        return folder;
    }

    private static void CopySideFiles(string folder, string[] names)
    {
        foreach (var file in names)
        {
            File.Copy(Path.Combine(TestPaths.TinyRandomGpt2, file), Path.Combine(folder, file));
        }
    }
}

using System.Text.Json.Nodes;
using System.Text.Json;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Onnx;

namespace OnnxGpt.Exporter;

/// <summary>
/// Writes <c>genai_config.json</c>, the file ONNX Runtime GenAI (<c>Microsoft.ML.OnnxRuntimeGenAI</c>) reads to run a
/// model folder: <c>new Model(folder)</c> then <c>Generator.AppendTokens</c> / <c>GenerateNextToken</c>.
/// <para>
/// GenAI's model <c>type</c> picks the class that drives the graph. <c>gpt2</c> would select its old GPT-2 class, whose
/// cache is one stacked <c>past_{i}</c> (2, B, H, P, D) per layer; every decoder-only type (<c>llama</c>, <c>phi</c>,
/// <c>decoder</c>, ...) selects the class that binds separate <c>past_key_values.{i}.key|value</c> (B, H, P, D), the
/// convention both our flavours follow. We write <see cref="ModelType"/>, the generic one, since GenAI keys no
/// architecture-specific behaviour on it (rotary embeddings, scaling and so on live in the graph).
/// </para>
/// <para>
/// Search defaults: <c>past_present_share_buffer</c> is true for the fused graph (GroupQueryAttention reads and writes
/// one (B, H, max_length, D) buffer in place) and false for the portable one (present = past ⊕ new, a new buffer each
/// step; GenAI then allocates present at P + T, and with the flag true it would hand the portable graph's Concat a
/// buffer of the wrong shape). <c>max_length</c> is the context length, the number of learned positions. Sampling defaults come from
/// <see cref="GenerationDefaults"/>; a caller overrides any of them through <c>GeneratorParams.SetSearchOption</c>.
/// </para>
/// </summary>
public static class GenAiConfig
{
    /// <summary>The generic decoder-only model type of ONNX Runtime GenAI.</summary>
    public const string ModelType = "decoder";

    /// <summary>The model type written for the Llama family: GenAI's own name for it (the same decoder-only class).</summary>
    public const string LlamaModelType = "llama";

    /// <summary>The JSON text for a model exported with <paramref name="options"/>.</summary>
    public static string ToJson(GptConfig config, ExportOptions options)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(options);
        bool shareBuffer = options.Graph.Flavor == GraphFlavor.Fused;
        bool llama = config.Family == ModelFamily.Llama;
        var generation = options.Generation;

        // GenAI requires an end token inside the vocabulary (it refuses -1 or an empty list when a generator starts),
        // stops a row when it emits it and leaves it out of the sequence. A vocabulary without one falls back to its
        // begin token, then to 0 (as the small presets do). It pads the prompts of a batch on the right with
        // pad_token_id and masks those positions; GPT-2 has no pad token, so, as Hugging Face does, the end token pads.
        int eos = config.EosTokenId ?? config.BosTokenId ?? 0;
        int bos = config.BosTokenId ?? eos;
        int pad = eos;

        var root = new JsonObject
        {
            ["model"] = new JsonObject
            {
                ["type"] = llama ? LlamaModelType : ModelType,
                ["vocab_size"] = config.VocabSize,
                ["context_length"] = config.ContextLength,
                ["bos_token_id"] = bos,
                ["eos_token_id"] = eos,
                ["pad_token_id"] = pad,
                ["decoder"] = new JsonObject
                {
                    ["filename"] = ModelFolder.ModelFile,
                    ["session_options"] = new JsonObject
                    {
                        ["log_id"] = "onnxruntime-genai",
                        ["provider_options"] = new JsonArray(),
                    },
                    ["hidden_size"] = config.Width,
                    ["head_size"] = config.HeadSize,
                    ["num_attention_heads"] = config.Heads,
                    ["num_key_value_heads"] = config.KvHeads,
                    ["num_hidden_layers"] = config.Layers,
                    ["inputs"] = Inputs(GptGraph.TakesPositionIds(config, options.Graph)),
                    ["outputs"] = new JsonObject
                    {
                        ["logits"] = GraphNames.Logits,
                        ["present_key_names"] = GraphNames.PresentKeyPattern,
                        ["present_value_names"] = GraphNames.PresentValuePattern,
                    },
                },
            },
            ["search"] = new JsonObject
            {
                ["max_length"] = config.ContextLength,
                ["min_length"] = 0,
                ["past_present_share_buffer"] = shareBuffer,
                ["num_beams"] = 1,
                ["num_return_sequences"] = 1,
                ["do_sample"] = generation.DoSample,
                ["temperature"] = generation.Temperature,
                ["top_k"] = generation.TopK,
                ["top_p"] = generation.TopP,
                ["repetition_penalty"] = generation.RepetitionPenalty,
                ["early_stopping"] = true,
                ["length_penalty"] = 1.0,
                ["diversity_penalty"] = 0.0,
                ["no_repeat_ngram_size"] = 0,
            },
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    private static JsonObject Inputs(bool positionIds)
    {
        // Every graph but the fused Llama one with rotary inside its attention takes position_ids.
        var inputs = new JsonObject
        {
            ["input_ids"] = GraphNames.InputIds,
            ["attention_mask"] = GraphNames.AttentionMask,
        };
        if (positionIds)
        {
            inputs["position_ids"] = GraphNames.PositionIds;
        }

        inputs["past_key_names"] = GraphNames.PastKeyPattern;
        inputs["past_value_names"] = GraphNames.PastValuePattern;
        return inputs;
    }
}

using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Exporter.Onnx;

// Shapes: B batch, T new tokens, P past tokens, S = P + T, C width, H query heads, Hk key/value heads, G = H / Hk
// query heads per key/value head, D head size, KV = Hk·D, F feed-forward width, V vocabulary.

/// <summary>
/// The Llama family's blocks: RMSNorm, rotary positions on q and k, grouped-query attention, a SwiGLU MLP.
/// <para>
/// Initializers: the checkpoint's tensors keep their names (<c>model.embed_tokens.weight</c>, the RMSNorm weights);
/// the projections, stored by Hugging Face as <c>[out, in]</c>, enter the graph as <c>[in, out]</c> for MatMul under
/// the checkpoint name plus <c>.T</c>, q|k|v concatenated as <c>self_attn.qkv_proj.weight.T</c> and gate|up as
/// <c>mlp.gate_up_proj.weight.T</c> so each is one MatMul; quantized, they are <c>MatMulNBits</c>' N rows of K
/// (<c>...qkv_proj.weight.q4</c> + <c>.scales</c>). The rotary angles are two initializers, <c>cos_cache</c> and
/// <c>sin_cache</c> (context, D/2): entry (p, j) is cos/sin(p · θ^(−2j/D)).
/// </para>
/// </summary>
public sealed partial class GptGraph
{
    /// <summary>Name of the rotary cosine table, (context, D/2).</summary>
    public const string CosCache = "cos_cache";

    /// <summary>Name of the rotary sine table, (context, D/2).</summary>
    public const string SinCache = "sin_cache";

    /// <summary>
    /// ONNX Runtime's GroupQueryAttention rotates q and k itself (<c>do_rotary</c>) only for head sizes that are a
    /// multiple of 16 (1.31 on CPU refuses others at run time); smaller heads, such as stories260K's 8, are rotated
    /// before it by the same standard operators as in the portable graph.
    /// </summary>
    private bool RotaryInsideAttention => _c.HeadSize % 16 == 0;

    /// <summary>
    /// Whether the graph has a <c>position_ids</c> input (with <see cref="GraphOptions.PositionIdsInput"/>): every graph
    /// but the fused Llama one whose GroupQueryAttention rotates by each row's cache position itself.
    /// </summary>
    public static bool TakesPositionIds(GptConfig config, GraphOptions options)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(options);
        return !(config.Family == ModelFamily.Llama && options.Flavor == GraphFlavor.Fused && config.HeadSize % 16 == 0);
    }

    /// <summary>The portable Llama graph from standard operators: embed, blocks, final norm. Returns (B, T, C).</summary>
    private string PortableLlamaLayers(string inputIds, string positionIds, string attentionMask,
        (string Key, string Value)[] past, (string Key, string Value)[] present)
    {
        string x;
        using (_g.Scope("embed"))
        {
            using (_g.Scope("embed_tokens"))
            {
                x = _g.Op("Gather", Weight(LlamaTensorNames.Embedding), inputIds);           // (B, T, C)
            }
        }

        string mask = AttentionBias(inputIds, attentionMask, past[0].Key);                    // (B, 1, T, S)
        (string Cos, string Sin) angles;
        if (UsesOpset23)
        {
            angles = (positionIds, "");                                                        // RotaryEmbedding gathers by position itself
        }
        else
        {
            using (_g.Scope("attn_mask"))
            {
                mask = _g.Named("group_mask", "Unsqueeze", [mask, _g.ConstInt64("group_axis", 2)]);   // (B, 1, 1, T, S)
            }

            using (_g.Scope("rotary"))
            {
                angles = RotaryAngles(positionIds);
            }
        }

        for (int i = 0; i < _c.Layers; i++)
        {
            using (_g.Scope($"layers.{i}"))
            {
                (x, present[i]) = LlamaBlock(i, x, mask, angles, past[i]);
            }
        }

        using (_g.Scope("norm"))
        {
            return RmsNorm(LlamaTensorNames.FinalNorm, x);
        }
    }

    private bool UsesOpset23 => UsesOpset23Operators(_c, _options);

    /// <summary>One Llama block: two residual lines.</summary>
    private (string X, (string Key, string Value) Present) LlamaBlock(int i, string x, string mask, (string Cos, string Sin) angles,
        (string Key, string Value) past)
    {
        string h;
        using (_g.Scope("input_layernorm"))
        {
            h = RmsNorm(LlamaTensorNames.InputNorm(i), x);
        }

        var (attn, present) = UsesOpset23 ? Opset23Attention(i, h, mask, past) : LlamaAttention(i, h, mask, angles, past);
        x = _g.Named("attn_residual", "Add", [x, attn]);                                      // x = x + attn(input_layernorm(x))
        using (_g.Scope("post_attention_layernorm"))
        {
            h = RmsNorm(LlamaTensorNames.PostAttentionNorm(i), x);
        }

        x = _g.Named("mlp_residual", "Add", [x, GatedMlp(i, h)]);                             // x = x + mlp(post_attention_layernorm(x))
        return (x, present);
    }

    /// <summary>
    /// Grouped-query causal attention from standard operators: q|k|v in one MatMul, q and k rotated, the cache as
    /// past ⊕ new with Hk heads, and each group of G query heads read against its key/value head by broadcasting
    /// (B, Hk, G, T, D) against (B, Hk, 1, S, D), so no key or value is copied per query head.
    /// </summary>
    private (string Output, (string Key, string Value) Present) LlamaAttention(int i, string x, string mask,
        (string Cos, string Sin) angles, (string Key, string Value) past)
    {
        using var _ = _g.Scope("attn");
        int c = _c.Width, kv = _c.KvWidth, h = _c.Heads, hk = _c.KvHeads, d = _c.HeadSize;
        string qkv;
        using (_g.Scope("qkv_proj"))
        {
            qkv = LlamaLinear(x, QkvName(i), QkvRows(i));                                     // (B, T, C + 2·KV)
        }

        var split = _g.Node("Split", [qkv, _g.ConstInt64("split_sizes", c, kv, kv)], 3, null, "", Attr.Int("axis", 2));
        string q = _g.Named("q_reshape", "Reshape", [split[0], _g.ConstInt64("q_shape", 0, 0, h, d)]);    // (B, T, H, D)
        string k = _g.Named("k_reshape", "Reshape", [split[1], _g.ConstInt64("kv_shape", 0, 0, hk, d)]);  // (B, T, Hk, D)
        string v = _g.Named("v_reshape", "Reshape", [split[2], _g.ConstInt64("v_shape", 0, 0, hk, d)]);   // (B, T, Hk, D)
        using (_g.Scope("q_rotary"))
        {
            q = Rotate(q, angles);
        }

        using (_g.Scope("k_rotary"))
        {
            k = Rotate(k, angles);
        }

        var perm = Attr.Ints("perm", 0, 2, 1, 3);
        q = _g.Node("Transpose", [q], 1, "q_transpose", "", perm)[0];                         // (B, H, T, D)
        k = _g.Node("Transpose", [k], 1, "k_transpose", "", perm)[0];                         // (B, Hk, T, D)
        v = _g.Node("Transpose", [v], 1, "v_transpose", "", perm)[0];                         // (B, Hk, T, D)
        string presentKey = _g.Node("Concat", [past.Key, k], 1, "present_key", "", Attr.Int("axis", 2))[0];     // (B, Hk, S, D)
        string presentValue = _g.Node("Concat", [past.Value, v], 1, "present_value", "", Attr.Int("axis", 2))[0]; // (B, Hk, S, D)

        string grouped = _g.Named("q_groups", "Reshape", [q, _g.ConstInt64("group_shape", 0, hk, h / hk, -1, d)]);   // (B, Hk, G, T, D)
        string groupAxis = _g.ConstInt64("group_axis", 2);
        string keyT = _g.Node("Transpose", [presentKey], 1, "key_transpose", "", Attr.Ints("perm", 0, 1, 3, 2))[0]; // (B, Hk, D, S)
        keyT = _g.Named("key_group", "Unsqueeze", [keyT, groupAxis]);                          // (B, Hk, 1, D, S)
        string scores = _g.Named("scores", "MatMul", [grouped, keyT]);                         // (B, Hk, G, T, S)
        scores = _g.Named("scaled_scores", "Mul", [scores, _g.Scalar("scale", _float, (float)(1.0 / Math.Sqrt(d)))]);
        scores = _g.Named("masked_scores", "Add", [scores, mask]);
        string probs = _g.OpWith("Softmax", [scores], Attr.Int("axis", -1));                   // (B, Hk, G, T, S)
        string values = _g.Named("value_group", "Unsqueeze", [presentValue, groupAxis]);       // (B, Hk, 1, S, D)
        string y = _g.Named("weighted_values", "MatMul", [probs, values]);                     // (B, Hk, G, T, D)
        y = _g.Named("merge_groups", "Reshape", [y, _g.ConstInt64("heads_shape", 0, h, -1, d)]);   // (B, H, T, D)
        y = _g.Node("Transpose", [y], 1, "merge_transpose", "", perm)[0];                      // (B, T, H, D)
        y = _g.Named("merge_heads", "Reshape", [y, _g.ConstInt64("merged_shape", 0, 0, c)]);   // (B, T, C)
        using (_g.Scope("o_proj"))
        {
            string name = LlamaTensorNames.Attention(i, "o_proj");
            return (LlamaLinear(y, name, () => _w[name]), (presentKey, presentValue));        // (B, T, C)
        }
    }

    /// <summary>
    /// Opset 23's attention: q|k|v in one MatMul, RotaryEmbedding on q and k (B, T, N·D) by position_ids from the
    /// cos/sin tables, then Attention on 3-D q, k, v with q_num_heads / kv_num_heads (grouped-query by itself), the
    /// cache as its past_key/past_value → present_key/present_value (B, Hk, S, D), the additive mask (B, 1, T, S).
    /// </summary>
    private (string Output, (string Key, string Value) Present) Opset23Attention(int i, string x, string mask, (string Key, string Value) past)
    {
        using var _ = _g.Scope("attn");
        string positions = _g.Graph.Input.Any(v => v.Name == GraphNames.PositionIds) ? GraphNames.PositionIds : throw new InvalidOperationException("opset 23 attention needs position_ids");
        int c = _c.Width, kv = _c.KvWidth;
        string qkv;
        using (_g.Scope("qkv_proj"))
        {
            qkv = LlamaLinear(x, QkvName(i), QkvRows(i));                                     // (B, T, C + 2·KV)
        }

        var split = _g.Node("Split", [qkv, _g.ConstInt64("split_sizes", c, kv, kv)], 3, null, "", Attr.Int("axis", 2));
        var (cos, sin) = RotaryTables();
        var interleaved = Attr.Int("interleaved", _c.RotaryInterleaved ? 1 : 0);
        string q = _g.Node("RotaryEmbedding", [split[0], cos, sin, positions], 1, "q_rotary", "", interleaved, Attr.Int("num_heads", _c.Heads))[0];   // (B, T, C)
        string k = _g.Node("RotaryEmbedding", [split[1], cos, sin, positions], 1, "k_rotary", "", interleaved, Attr.Int("num_heads", _c.KvHeads))[0]; // (B, T, KV)
        var outs = _g.Node("Attention", [q, k, split[2], mask, past.Key, past.Value], 3, null, "",
            Attr.Int("q_num_heads", _c.Heads), Attr.Int("kv_num_heads", _c.KvHeads));         // (B, T, C), present (B, Hk, S, D) twice
        using (_g.Scope("o_proj"))
        {
            string name = LlamaTensorNames.Attention(i, "o_proj");
            return (LlamaLinear(outs[0], name, () => _w[name]), (outs[1], outs[2]));
        }
    }

    /// <summary>cos and sin of each new token's angles, gathered from the tables by position: (B, T, 1, D/2), or (B, T, 1, D/2, 1) interleaved.</summary>
    private (string Cos, string Sin) RotaryAngles(string positionIds)
    {
        var (cosTable, sinTable) = RotaryTables();
        string axes = _c.RotaryInterleaved ? _g.ConstInt64("head_axes", 2, 4) : _g.ConstInt64("head_axes", 2);
        string cos = _g.Named("cos", "Gather", [cosTable, positionIds]);                       // (B, T, D/2)
        string sin = _g.Named("sin", "Gather", [sinTable, positionIds]);                       // (B, T, D/2)
        return (_g.Named("cos_heads", "Unsqueeze", [cos, axes]), _g.Named("sin_heads", "Unsqueeze", [sin, axes]));
    }

    /// <summary>The rotary tables as initializers, (context, D/2), computed in double precision.</summary>
    private (string Cos, string Sin) RotaryTables()
    {
        int half = _c.HeadSize / 2;
        Tensor Table(Func<double, double> f)
        {
            var t = new Tensor(_c.ContextLength, half);
            for (int p = 0; p < _c.ContextLength; p++)
            {
                for (int j = 0; j < half; j++)
                {
                    t.Data[(long)p * half + j] = (float)f(p * Math.Pow(_c.RopeTheta, -2.0 * j / _c.HeadSize));
                }
            }

            return t;
        }

        return (Weight(CosCache, () => Table(Math.Cos)), Weight(SinCache, () => Table(Math.Sin)));
    }

    /// <summary>
    /// Rotates each head of x (B, T, N, D): pairs (x0, x1) become (x0·cos − x1·sin, x0·sin + x1·cos), the pairs being
    /// (2j, 2j + 1) when interleaved, else (j, j + D/2).
    /// </summary>
    private string Rotate(string x, (string Cos, string Sin) angles)
    {
        int d = _c.HeadSize;
        string x0, x1;
        if (_c.RotaryInterleaved)
        {
            string pairs = _g.Named("pairs", "Reshape", [x, _g.ConstInt64("pairs_shape", 0, 0, 0, d / 2, 2)]);   // (B, T, N, D/2, 2)
            var parts = _g.Node("Split", [pairs, _g.ConstInt64("pair_sizes", 1, 1)], 2, null, "", Attr.Int("axis", -1));
            (x0, x1) = (parts[0], parts[1]);                                                   // (B, T, N, D/2, 1) each
        }
        else
        {
            var parts = _g.Node("Split", [x, _g.ConstInt64("half_sizes", d / 2, d / 2)], 2, null, "", Attr.Int("axis", -1));
            (x0, x1) = (parts[0], parts[1]);                                                   // (B, T, N, D/2) each
        }

        string r0 = _g.Named("rotated_0", "Sub", [_g.Named("x0_cos", "Mul", [x0, angles.Cos]), _g.Named("x1_sin", "Mul", [x1, angles.Sin])]);
        string r1 = _g.Named("rotated_1", "Add", [_g.Named("x0_sin", "Mul", [x0, angles.Sin]), _g.Named("x1_cos", "Mul", [x1, angles.Cos])]);
        string joined = _g.Node("Concat", [r0, r1], 1, "rotated", "", Attr.Int("axis", -1))[0];
        return _c.RotaryInterleaved
            ? _g.Named("unpair", "Reshape", [joined, _g.ConstInt64("unpair_shape", 0, 0, 0, d)])   // (B, T, N, D)
            : joined;                                                                          // (B, T, N, D)
    }

    /// <summary>down(silu(gate(x)) · up(x)), gate and up in one MatMul. Returns (B, T, C).</summary>
    private string GatedMlp(int i, string x)
    {
        using var _ = _g.Scope("mlp");
        int f = _c.FeedForwardWidth;
        string gateUp;
        using (_g.Scope("gate_up_proj"))
        {
            gateUp = LlamaLinear(x, GateUpName(i), GateUpRows(i));                              // (B, T, 2F)
        }

        var split = _g.Node("Split", [gateUp, _g.ConstInt64("split_sizes", f, f)], 2, null, "", Attr.Int("axis", 2));
        string gated;
        using (_g.Scope("act"))
        {
            gated = Silu(split[0]);                                                            // (B, T, F)
        }

        string hidden = _g.Named("gated", "Mul", [gated, split[1]]);                           // (B, T, F)
        using (_g.Scope("down_proj"))
        {
            string name = LlamaTensorNames.Mlp(i, "down_proj");
            return LlamaLinear(hidden, name, () => _w[name]);                                  // (B, T, C)
        }
    }

    /// <summary>x · sigmoid(x).</summary>
    private string Silu(string x) => _g.Named("silu", "Mul", [x, _g.Op("Sigmoid", x)]);

    /// <summary>
    /// x @ Wᵀ for W in nn.Linear layout [out, in] (made by <paramref name="rows"/> on first use): MatMul on the
    /// transposed copy, or MatMulNBits on W's rows as they are.
    /// </summary>
    private string LlamaLinear(string x, string name, Func<Tensor> rows)
    {
        if (_options.Quantization != WeightQuantization.None)
        {
            return QuantizedMatMul(name, rows(), x, transposeConv1D: false);
        }

        return _g.Op("MatMul", x, Weight(name + ".T", () =>
        {
            var w = rows();
            return new Tensor([w.Shape[1], w.Shape[0]], Transpose(w.Data, w.Shape[0], w.Shape[1]));
        }));
    }

    /// <summary>x / √(mean(x²) + ε) · weight over the last axis: opset 23's RMSNormalization, or standard operators.</summary>
    private string RmsNorm(string weight, string x)
    {
        if (UsesOpset23)
        {
            return _g.Node("RMSNormalization", [x, Weight(weight)], 1, null, "",
                Attr.Int("axis", -1), Attr.Float("epsilon", (float)_c.LayerNormEpsilon), Attr.Int("stash_type", 1))[0];
        }

        string square = _g.Named("square", "Mul", [x, x]);
        string mean = _g.Node("ReduceMean", [square, _g.ConstInt64("axes", -1)], 1, "mean_square", "", Attr.Int("keepdims", 1))[0];
        string root = _g.Op("Sqrt", _g.Op("Add", mean, _g.Scalar("epsilon", _float, (float)_c.LayerNormEpsilon)));
        string normalized = _g.Named("normalized", "Div", [x, root]);
        return _g.Named("scaled", "Mul", [normalized, Weight(weight)]);
    }

    /// <summary>
    /// The fused Llama graph: the residual adds happen inside SkipSimplifiedLayerNormalization (which hands back the
    /// sum as the new residual), attention is GroupQueryAttention with its own rotary embedding from the cos/sin
    /// tables (interleaved or not, as the checkpoint's weights are), on a cache written in place:
    /// <code>
    /// h = input_layernorm(x)                            // layer 0: SimplifiedLayerNormalization
    /// x, h = post_attention_layernorm(x + attn(h))
    /// pending = mlp(h)                                  // added in the next block's input_layernorm, or the final norm
    /// x, h = input_layernorm(x + pending)
    /// </code>
    /// Returns norm(x), (B, T, C).
    /// </summary>
    private string FusedLlamaLayers(string inputIds, string? positionIds, (string SeqLensK, string? Total) lengths,
        (string Key, string Value)[] past, (string Key, string Value)[] present)
    {
        string x, h;
        using (_g.Scope("embed"))
        {
            using (_g.Scope("embed_tokens"))
            {
                x = _g.Op("Gather", Weight(LlamaTensorNames.Embedding), inputIds);             // (B, T, C)
            }
        }

        (string Cos, string Sin) tables, angles = default;
        using (_g.Scope("rotary"))
        {
            tables = RotaryTables();
            if (!RotaryInsideAttention)
            {
                angles = RotaryAngles(positionIds!);
            }
        }

        string? pending = null;
        for (int i = 0; i < _c.Layers; i++)
        {
            using var _ = _g.Scope($"layers.{i}");
            using (_g.Scope("input_layernorm"))
            {
                (x, h) = pending is null
                    ? (x, SimplifiedNorm(LlamaTensorNames.InputNorm(i), x))
                    : SkipSimplifiedNorm(LlamaTensorNames.InputNorm(i), x, pending);          // x = x + pending; h = norm(x)
            }

            string attn;
            (attn, present[i]) = FusedLlamaAttention(i, h, lengths, tables, angles, past[i]);
            using (_g.Scope("post_attention_layernorm"))
            {
                (x, h) = SkipSimplifiedNorm(LlamaTensorNames.PostAttentionNorm(i), x, attn);   // x = x + attn; h = norm(x)
            }

            pending = GatedMlp(i, h);
        }

        using (_g.Scope("norm"))
        {
            return SkipSimplifiedNorm(LlamaTensorNames.FinalNorm, x, pending!).Normalized;     // norm(x + mlp(...))
        }
    }

    /// <summary>
    /// GroupQueryAttention on the packed q|k|v, rotating q and k itself from the cos/sin tables (or, for heads it
    /// cannot rotate, on q, k and v rotated first); o_proj after it.
    /// </summary>
    private (string Output, (string Key, string Value) Present) FusedLlamaAttention(int i, string x, (string SeqLensK, string? Total) lengths,
        (string Cos, string Sin) tables, (string Cos, string Sin) angles, (string Key, string Value) past)
    {
        using var _ = _g.Scope("attn");
        string qkv;
        using (_g.Scope("qkv_proj"))
        {
            qkv = LlamaLinear(x, QkvName(i), QkvRows(i));                                     // (B, T, C + 2·KV)
        }

        string[] outs;
        if (RotaryInsideAttention)
        {
            outs = _g.Node("GroupQueryAttention",
                [qkv, "", "", past.Key, past.Value, lengths.SeqLensK, lengths.Total!, tables.Cos, tables.Sin], 3, null, MicrosoftDomain,
                Attr.Int("num_heads", _c.Heads), Attr.Int("kv_num_heads", _c.KvHeads),
                Attr.Int("do_rotary", 1), Attr.Int("rotary_interleaved", _c.RotaryInterleaved ? 1 : 0));   // (B, T, C), present (B, Hk, S, D) twice
        }
        else
        {
            int c = _c.Width, kv = _c.KvWidth, d = _c.HeadSize;
            var split = _g.Node("Split", [qkv, _g.ConstInt64("split_sizes", c, kv, kv)], 3, null, "", Attr.Int("axis", 2));
            string q = _g.Named("q_reshape", "Reshape", [split[0], _g.ConstInt64("q_shape", 0, 0, _c.Heads, d)]);       // (B, T, H, D)
            string k = _g.Named("k_reshape", "Reshape", [split[1], _g.ConstInt64("kv_shape", 0, 0, _c.KvHeads, d)]);    // (B, T, Hk, D)
            using (_g.Scope("q_rotary"))
            {
                q = Rotate(q, angles);
            }

            using (_g.Scope("k_rotary"))
            {
                k = Rotate(k, angles);
            }

            q = _g.Named("q_merge", "Reshape", [q, _g.ConstInt64("q_merged", 0, 0, c)]);      // (B, T, C)
            k = _g.Named("k_merge", "Reshape", [k, _g.ConstInt64("k_merged", 0, 0, kv)]);     // (B, T, KV)
            outs = _g.Node("GroupQueryAttention",
                [q, k, split[2], past.Key, past.Value, lengths.SeqLensK, lengths.Total!], 3, null, MicrosoftDomain,
                Attr.Int("num_heads", _c.Heads), Attr.Int("kv_num_heads", _c.KvHeads));      // (B, T, C), present (B, Hk, S, D) twice
        }

        using (_g.Scope("o_proj"))
        {
            string name = LlamaTensorNames.Attention(i, "o_proj");
            return (LlamaLinear(outs[0], name, () => _w[name]), (outs[1], outs[2]));
        }
    }

    /// <summary>RMSNorm as ONNX Runtime's SimplifiedLayerNormalization (registered in the ai.onnx domain).</summary>
    private string SimplifiedNorm(string weight, string x) =>
        _g.Node("SimplifiedLayerNormalization", [x, Weight(weight)], 1, null, "",
            Attr.Int("axis", -1), Attr.Float("epsilon", (float)_c.LayerNormEpsilon), Attr.Int("stash_type", 1))[0];

    /// <summary>sum = x + skip, normalized = RMSNorm(sum): <c>com.microsoft.SkipSimplifiedLayerNormalization</c>, the sum (output 3) kept.</summary>
    private (string Sum, string Normalized) SkipSimplifiedNorm(string weight, string x, string skip)
    {
        var outs = _g.Node("SkipSimplifiedLayerNormalization", [x, skip, Weight(weight)], 4, null, MicrosoftDomain,
            Attr.Float("epsilon", (float)_c.LayerNormEpsilon));
        var node = _g.Graph.Node[^1];
        node.Output[1] = "";
        node.Output[2] = "";
        return (outs[3], outs[0]);
    }

    private static string QkvName(int i) => LlamaTensorNames.Block(i) + "self_attn.qkv_proj.weight";

    private static string GateUpName(int i) => LlamaTensorNames.Block(i) + "mlp.gate_up_proj.weight";

    /// <summary>q_proj, k_proj and v_proj stacked row-wise: [C + 2·KV, C].</summary>
    private Func<Tensor> QkvRows(int i) => () => StackRows(
        _w[LlamaTensorNames.Attention(i, "q_proj")], _w[LlamaTensorNames.Attention(i, "k_proj")], _w[LlamaTensorNames.Attention(i, "v_proj")]);

    /// <summary>gate_proj and up_proj stacked row-wise: [2F, C].</summary>
    private Func<Tensor> GateUpRows(int i) => () => StackRows(_w[LlamaTensorNames.Mlp(i, "gate_proj")], _w[LlamaTensorNames.Mlp(i, "up_proj")]);

    private static Tensor StackRows(params Tensor[] parts)
    {
        int cols = parts[0].Shape[1];
        var data = new float[parts.Sum(p => p.Data.Length)];
        int at = 0;
        foreach (var p in parts)
        {
            p.Data.CopyTo(data, at);
            at += p.Data.Length;
        }

        return new Tensor([data.Length / cols, cols], data);
    }
}

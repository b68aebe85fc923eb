using DataType = OnnxGpt.Exporter.Onnx.Proto.TensorProto.Types.DataType;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Onnx.Proto;

namespace OnnxGpt.Exporter.Onnx;

// Shapes: B batch, T new tokens, P past tokens, S = P + T total tokens, C width, H heads, D head size,
// F feed-forward width, V vocabulary.

/// <summary>
/// Builds the GPT graph. The portable flavour uses standard <c>ai.onnx</c> operators only, so it runs on any
/// execution provider and shows each step plainly in Netron; the fused flavour uses ONNX Runtime's contrib operators
/// (see <see cref="GraphFlavor.Fused"/>). Both follow the Hugging Face Optimum I/O convention
/// (<see cref="IoConventions.Optimum"/>).
/// </summary>
public sealed partial class GptGraph
{
    /// <summary>The ai.onnx opset the graph uses (LayerNormalization 17, Gelu 20).</summary>
    public const int Opset = 21;

    /// <summary>ONNX IR version written (IR 10 goes with opset 21).</summary>
    public const int IrVersion = 10;

    /// <summary>The ai.onnx opset of the portable Llama graph (RMSNormalization, RotaryEmbedding, Attention).</summary>
    public const int Opset23 = 23;

    /// <summary>The IR version opset 23 needs.</summary>
    public const int IrVersion11 = 11;

    /// <summary>The ai.onnx opset the graph for <paramref name="config"/> with <paramref name="options"/> imports.</summary>
    public static int OpsetFor(GptConfig config, GraphOptions options) => UsesOpset23Operators(config, options) ? Opset23 : Opset;

    /// <summary>The IR version the graph for <paramref name="config"/> with <paramref name="options"/> is written in.</summary>
    public static int IrVersionFor(GptConfig config, GraphOptions options) => UsesOpset23Operators(config, options) ? IrVersion11 : IrVersion;

    /// <summary>The portable Llama graph, unless its operators are decomposed: opset 23's RMSNormalization, RotaryEmbedding, Attention.</summary>
    public static bool UsesOpset23Operators(GptConfig config, GraphOptions options)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(options);
        return config.Family == ModelFamily.Llama && options.Flavor == GraphFlavor.Portable && !options.DecomposedLlamaOperators;
    }

    /// <summary>The contrib operator domain of ONNX Runtime, used by the fused flavour.</summary>
    public const string MicrosoftDomain = "com.microsoft";

    private readonly OnnxGraphBuilder _g = new("gpt");
    private readonly GptWeights _w;
    private readonly GptConfig _c;
    private readonly Func<WeightData, TensorProto> _initializer;
    private readonly HashSet<string> _added = new(StringComparer.Ordinal);
    private readonly GraphOptions _options;
    private readonly bool _fused;
    private readonly bool _llama;

    /// <summary>The type of weights, activations and cache: float32, or float16 for <see cref="WeightPrecision.Float16"/>.</summary>
    private readonly DataType _float;

    /// <summary>The type of the KV cache: <see cref="_float"/>, or float16 for <see cref="GraphOptions.Float16Cache"/>.</summary>
    private readonly DataType _cache;

    private GptGraph(GptWeights weights, GraphOptions options, Func<WeightData, TensorProto> initializer)
    {
        _w = weights;
        _c = weights.Config;
        _options = options.Validate();
        _fused = options.Flavor == GraphFlavor.Fused;
        _llama = _c.Family == ModelFamily.Llama;
        _float = options.Precision == WeightPrecision.Float16 ? DataType.Float16 : DataType.Float;
        _cache = options.Float16Cache ? DataType.Float16 : _float;
        _initializer = initializer;
        if (options.DecomposedLlamaOperators && !_llama)
        {
            throw new OnnxGptException("decomposed Llama operators are a choice of the Llama family's portable graph; this is a GPT-2 model.");
        }

        if (_fused && _c.HeadSize % 8 != 0)
        {
            throw new OnnxGptException(
                $"the fused graph's GroupQueryAttention needs a head size that is a multiple of 8; this model has head size {_c.HeadSize} " +
                $"(n_embd {_c.Width} / n_head {_c.Heads}). Export it with --graph portable.");
        }

        if (options.Float16Cache && (_llama || _c.HeadSize % 16 != 0))
        {
            throw new OnnxGptException(
                $"a float16 KV cache (--kv-cache fp16) is built for the GPT-2 family with a head size that is a multiple of 16; this model is " +
                $"{(_llama ? "of the Llama family" : $"of head size {_c.HeadSize} (n_embd {_c.Width} / n_head {_c.Heads})")}. Export it with the default cache.");
        }
    }

    /// <summary>
    /// Builds the graph. <paramref name="initializer"/> turns a checkpoint tensor into its initializer; by default
    /// the bytes go inline, an exporter writing external data passes its own.
    /// </summary>
    public static GraphProto Build(GptWeights weights, GraphOptions? options = null, Func<WeightData, TensorProto>? initializer = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        return new GptGraph(weights, options ?? GraphOptions.Portable, initializer ?? TensorProtos.Inline).BuildGraph();
    }

    private GraphProto BuildGraph()
    {
        bool stacked = _options.IoConvention == IoConventions.OrtGpt2;
        var indexType = stacked ? DataType.Int32 : DataType.Int64;
        var inputIds = _g.Input(GraphNames.InputIds, indexType, GraphNames.BatchDim, GraphNames.SequenceDim);
        var attentionMask = _g.Input(GraphNames.AttentionMask, indexType, GraphNames.BatchDim, GraphNames.TotalSequenceDim);
        bool positionsInGraph = TakesPositionIds(_c, _options);
        var positionIds = _options.PositionIdsInput && positionsInGraph ? _g.Input(GraphNames.PositionIds, indexType, GraphNames.BatchDim, GraphNames.SequenceDim) : null;
        var useCacheBranch = _options.UseCacheBranchInput ? _g.Input("use_cache_branch", DataType.Bool, 1) : null;
        var past = new (string Key, string Value)[_c.Layers];
        for (int i = 0; i < _c.Layers; i++)
        {
            past[i] = stacked
                ? StackedPast(i)
                : (_g.Input(GraphNames.PastKey(i), _cache, GraphNames.BatchDim, _c.KvHeads, GraphNames.PastSequenceDim, _c.HeadSize),
                   _g.Input(GraphNames.PastValue(i), _cache, GraphNames.BatchDim, _c.KvHeads, GraphNames.PastSequenceDim, _c.HeadSize));
            if (useCacheBranch is not null)
            {
                past[i] = CacheBranch(i, past[i], useCacheBranch);
            }
        }

        if (positionsInGraph)
        {
            positionIds ??= PositionsFromMask(inputIds, attentionMask);
        }

        var present = new (string Key, string Value)[_c.Layers];
        string x, logits;
        string? logitsToKeep = null;
        if (_llama)
        {
            logitsToKeep = _fused ? LogitsToKeep() : null;
            x = _fused
                ? FusedLlamaLayers(inputIds, positionIds, SequenceLengths(attentionMask), past, present)
                : PortableLlamaLayers(inputIds, positionIds!, attentionMask, past, present);
        }
        else if (_fused)
        {
            logitsToKeep = LogitsToKeep();
            x = FusedLayers(inputIds, positionIds!, SequenceLengths(attentionMask), past, present);
        }
        else
        {
            x = Embed(inputIds, positionIds!);                       // (B, T, C)
            var mask = AttentionBias(inputIds, attentionMask, past[0].Key);   // (B, 1, T, S)
            for (int i = 0; i < _c.Layers; i++)
            {
                using (_g.Scope($"layers.{i}"))
                {
                    (x, present[i]) = Block(i, x, (mask, null), past[i]);
                }
            }

            using (_g.Scope("ln_f"))
            {
                x = LayerNorm(TensorNames.LnF, x);
            }
        }

        using (_g.Scope("lm_head"))
        {
            logits = Head(x, logitsToKeep);
        }

        _g.Output(GraphNames.Logits, logits, DataType.Float, GraphNames.BatchDim, GraphNames.SequenceDim, _c.VocabSize);
        for (int i = 0; i < _c.Layers; i++)
        {
            if (stacked)
            {
                _g.Output(GraphNames.StackedPresent(i), StackedPresent(i, present[i]), _float, 2, GraphNames.BatchDim, _c.Heads, GraphNames.TotalSequenceDim, _c.HeadSize);
                continue;
            }

            _g.Output(GraphNames.PresentKey(i), present[i].Key, _cache, GraphNames.BatchDim, _c.KvHeads, GraphNames.TotalSequenceDim, _c.HeadSize);
            _g.Output(GraphNames.PresentValue(i), present[i].Value, _cache, GraphNames.BatchDim, _c.KvHeads, GraphNames.TotalSequenceDim, _c.HeadSize);
        }

        return _g.Graph;
    }

    /// <summary>ORT GPT-2 convention: layer i's past is one (2, B, H, P, D) input; key and value are its two halves.</summary>
    private (string Key, string Value) StackedPast(int i)
    {
        string stackedPast = _g.Input(GraphNames.StackedPast(i), _float, 2, GraphNames.BatchDim, _c.Heads, GraphNames.PastSequenceDim, _c.HeadSize);
        using var _ = _g.Scope($"layers.{i}");
        string key = _g.Named("past_key", "Gather", [stackedPast, _g.ScalarInt64("key_index", 0)], Attr.Int("axis", 0));       // (B, H, P, D)
        string value = _g.Named("past_value", "Gather", [stackedPast, _g.ScalarInt64("value_index", 1)], Attr.Int("axis", 0));  // (B, H, P, D)
        return (key, value);
    }

    /// <summary>ORT GPT-2 convention: present key and value stacked into one (2, B, H, S, D) output.</summary>
    private string StackedPresent(int i, (string Key, string Value) present)
    {
        using var _ = _g.Scope($"layers.{i}");
        string axis0 = _g.ConstInt64("stack_axis", 0);
        string key = _g.Named("present_key_unsqueeze", "Unsqueeze", [present.Key, axis0]);        // (1, B, H, S, D)
        string value = _g.Named("present_value_unsqueeze", "Unsqueeze", [present.Value, axis0]);  // (1, B, H, S, D)
        return _g.Named("present_stack", "Concat", [key, value], Attr.Int("axis", 0));            // (2, B, H, S, D)
    }

    /// <summary>A merged decoder's switch: with use_cache_branch false the past counts as empty (length 0).</summary>
    private (string Key, string Value) CacheBranch(int i, (string Key, string Value) past, string useCacheBranch)
    {
        using var _ = _g.Scope($"layers.{i}");
        using var __ = _g.Scope("cache_branch");
        string use = _g.OpWith("Cast", [useCacheBranch], Attr.Int("to", (long)DataType.Int64));                       // [1]
        string pastLen = _g.Node("Shape", [past.Key], 1, "past_len", "", Attr.Int("start", 2), Attr.Int("end", 3))[0];  // [1]
        string keep = _g.Named("kept_len", "Mul", [pastLen, use]);                                                     // [1]
        string zero = _g.ConstInt64("start", 0);
        string axis = _g.ConstInt64("axis", 2);
        return (_g.Named("key", "Slice", [past.Key, zero, keep, axis]), _g.Named("value", "Slice", [past.Value, zero, keep, axis]));
    }

    /// <summary>position_ids from the mask: real tokens count from 0, padding gets 0; the last T columns.</summary>
    private string PositionsFromMask(string inputIds, string attentionMask)
    {
        using var _ = _g.Scope("position_ids");
        string mask = _g.OpWith("Cast", [attentionMask], Attr.Int("to", (long)DataType.Int64));                       // (B, S)
        string counted = _g.Op("CumSum", mask, _g.ScalarInt64("axis", 1));                                            // (B, S)
        string positions = _g.Op("Sub", counted, _g.ScalarInt64("one", 1));
        positions = _g.Op("Max", positions, _g.ScalarInt64("zero", 0));                                               // (B, S)
        string newLen = _g.Node("Shape", [inputIds], 1, "new_len", "", Attr.Int("start", 1), Attr.Int("end", 2))[0];   // [1]
        string totalLen = _g.Node("Shape", [attentionMask], 1, "total_len", "", Attr.Int("start", 1), Attr.Int("end", 2))[0]; // [1]
        string start = _g.Named("start", "Sub", [totalLen, newLen]);
        return _g.Op("Slice", positions, start, totalLen, _g.ConstInt64("axes", 1));                                  // (B, T)
    }

    /// <summary>x = wte[input_ids] + wpe[position_ids].</summary>
    private string Embed(string inputIds, string positionIds)
    {
        using var _ = _g.Scope("embed");
        string tok, pos;
        using (_g.Scope("wte"))
        {
            tok = _g.Op("Gather", Weight(TensorNames.Wte), inputIds);       // (B, T, C)
        }

        using (_g.Scope("wpe"))
        {
            pos = _g.Op("Gather", Weight(TensorNames.Wpe), positionIds);    // (B, T, C)
        }

        return _g.Op("Add", tok, pos);
    }

    /// <summary>
    /// The additive attention bias shared by every layer: 0 where query t may attend to key s (s is not padding and
    /// s &lt;= P + t), the lowest float elsewhere. A finite value keeps rows that are all padding free of NaN.
    /// </summary>
    private string AttentionBias(string inputIds, string attentionMask, string pastKey0)
    {
        using var _ = _g.Scope("attn_mask");
        string one = _g.ScalarInt64("one", 1);
        string newLen = Squeeze(_g.Node("Shape", [inputIds], 1, "new_len", "", Attr.Int("start", 1), Attr.Int("end", 2))[0], "new_len");
        string totalLen = Squeeze(_g.Node("Shape", [attentionMask], 1, "total_len", "", Attr.Int("start", 1), Attr.Int("end", 2))[0], "total_len");
        string pastLen = Squeeze(_g.Node("Shape", [pastKey0], 1, "past_len", "", Attr.Int("start", 2), Attr.Int("end", 3))[0], "past_len");
        string queryEnd = _g.Named("query_end", "Add", [pastLen, newLen]);
        string queryPos = _g.Named("query_pos", "Range", [pastLen, queryEnd, one]);               // (T)
        string zero = _g.ScalarInt64("zero", 0);
        string keyPos = _g.Named("key_pos", "Range", [zero, totalLen, one]);                     // (S)
        string axis0 = _g.ConstInt64("axis0", 0);
        string axis1 = _g.ConstInt64("axis1", 1);
        string q = _g.Named("query_col", "Unsqueeze", [queryPos, axis1]);                        // (T, 1)
        string k = _g.Named("key_row", "Unsqueeze", [keyPos, axis0]);                            // (1, S)
        string causal = _g.Named("causal", "LessOrEqual", [k, q]);                               // (T, S)
        string notPadding = _g.OpWith("Cast", [attentionMask], Attr.Int("to", (long)DataType.Bool)); // (B, S)
        string axes12 = _g.ConstInt64("axes12", 1, 2);
        string keys = _g.Named("key_mask", "Unsqueeze", [notPadding, axes12]);                  // (B, 1, 1, S)
        string allowed = _g.Op("And", causal, keys);                                             // (B, 1, T, S)
        string open = _g.Scalar("open", _float, 0f);
        string closed = _g.Scalar("closed", _float, _float == DataType.Float16 ? (float)Half.MinValue : float.MinValue);
        return _g.Op("Where", allowed, open, closed);                                            // (B, 1, T, S)
    }

    /// <summary>
    /// GroupQueryAttention's view of the mask: <c>seqlens_k</c> (B) = real tokens per row − 1 and the scalar
    /// <c>total_sequence_length</c>, both int32. The fused graph expects each row's tokens to start at cache
    /// position 0 (padding, if any, on the right), which is how the host lays out its in-place cache.
    /// </summary>
    private (string SeqLensK, string? Total) SequenceLengths(string attentionMask)
    {
        using var _ = _g.Scope("attn_mask");
        string lengths = _g.Node("ReduceSum", [attentionMask, _g.ConstInt64("axes", 1)], 1, "lengths", "", Attr.Int("keepdims", 0))[0]; // (B)
        string last = _g.Named("last_index", "Sub", [lengths, _g.ScalarInt64("one", 1)]);
        string seqLensK = _g.Node("Cast", [last], 1, "seqlens_k", "", Attr.Int("to", (long)DataType.Int32))[0];
        string total = Squeeze(_g.Node("Shape", [attentionMask], 1, "total_len", "", Attr.Int("start", 1), Attr.Int("end", 2))[0], "total_len");
        return (seqLensK, _g.Node("Cast", [total], 1, "total_sequence_length", "", Attr.Int("to", (long)DataType.Int32))[0]);
    }

    /// <summary>The optional <c>num_logits_to_keep</c> input: an int64 scalar whose initializer (0, every position) is its default.</summary>
    private string LogitsToKeep()
    {
        _g.Input(GraphNames.LogitsToKeep, DataType.Int64);
        _g.DefaultFor(GraphNames.LogitsToKeep, TensorProtos.Inline(new WeightData(GraphNames.LogitsToKeep, [], DataType.Int64, new byte[8])));
        return GraphNames.LogitsToKeep;
    }

    private string Squeeze(string oneElement, string name) => _g.Named(name + "_scalar", "Squeeze", [oneElement]);

    /// <summary>
    /// The fused flavour's embedding, blocks and final layer norm. Each residual add happens inside the layer norm
    /// that follows it (<c>com.microsoft.SkipLayerNormalization</c>, which also adds the bias of the projection
    /// before it and hands back the sum as the new residual), so a block reads:
    /// <code>
    /// x, h = ln_1(x + pending)                  // the previous block's MLP output (layer 0: the position embedding)
    /// x, h = ln_2(x + attn(h) + c_proj.bias)    // attention; the projection's bias is added here
    /// pending = mlp(h)                          // its c_proj bias too: added in the next ln_1, or ln_f
    /// </code>
    /// Returns ln_f(x), (B, T, C).
    /// </summary>
    private string FusedLayers(string inputIds, string positionIds, (string SeqLensK, string? Total) lengths,
        (string Key, string Value)[] past, (string Key, string Value)[] present)
    {
        string x, pending;
        using (_g.Scope("embed"))
        {
            using (_g.Scope("wte"))
            {
                x = _g.Op("Gather", Weight(TensorNames.Wte), inputIds);          // (B, T, C)
            }

            using (_g.Scope("wpe"))
            {
                pending = _g.Op("Gather", Weight(TensorNames.Wpe), positionIds); // (B, T, C)
            }
        }

        string? pendingBias = null;
        string h;
        for (int i = 0; i < _c.Layers; i++)
        {
            string prefix = TensorNames.Block(i);
            using var _ = _g.Scope($"layers.{i}");
            (x, h) = SkipLayerNorm(prefix, "ln_1", x, pending, pendingBias);           // x = x + pending; h = ln_1(x)
            var (attn, attnBias, kv) = FusedAttention(prefix, h, lengths, past[i]);
            present[i] = kv;
            (x, h) = SkipLayerNorm(prefix, "ln_2", x, attn, attnBias);                 // x = x + attn(ln_1(x)); h = ln_2(x)
            (pending, pendingBias) = FusedMlp(prefix, h);                             // its bias is added with the next residual
        }

        using (_g.Scope("ln_f"))
        {
            (_, h) = SkipLayerNorm(TensorNames.LnF, x, pending, pendingBias);         // ln_f(x + mlp(ln_2(x)))
        }

        return h;
    }

    /// <summary>A block's <c>ln_1</c> or <c>ln_2</c> as SkipLayerNormalization, in its own scope.</summary>
    private (string Sum, string Normalized) SkipLayerNorm(string blockPrefix, string scope, string x, string skip, string? bias)
    {
        using var _ = _g.Scope(scope);
        return SkipLayerNorm(blockPrefix + scope, x, skip, bias);
    }

    /// <summary>
    /// sum = x + skip (+ bias), normalized = LayerNorm(sum): <c>com.microsoft.SkipLayerNormalization</c> with its
    /// optional mean and inverse deviation outputs left out and the sum (output 3) kept as the residual.
    /// </summary>
    private (string Sum, string Normalized) SkipLayerNorm(string name, string x, string skip, string? bias)
    {
        var inputs = new List<string> { x, skip, Weight(name + ".weight") };
        if (_c.Bias)
        {
            inputs.Add(Weight(name + ".bias"));
        }

        if (bias is not null)
        {
            inputs.Add(bias);
        }

        var outs = _g.Node("SkipLayerNormalization", inputs, 4, null, MicrosoftDomain, Attr.Float("epsilon", (float)_c.LayerNormEpsilon));
        var node = _g.Graph.Node[^1];
        node.Output[1] = "";
        node.Output[2] = "";
        return (outs[3], outs[0]);
    }

    /// <summary>One transformer block, as nanoGPT's Block.forward: two residual lines.</summary>
    private (string X, (string Key, string Value) Present) Block(int i, string x, (string Bias, string? Total) mask, (string Key, string Value) past)
    {
        string prefix = TensorNames.Block(i);
        var (attn, present) = Attention(prefix, LayerNorm(prefix, "ln_1", x), mask, past);
        x = _g.Named("attn_residual", "Add", [x, attn]);                  // x = x + attn(ln_1(x))
        x = _g.Named("mlp_residual", "Add", [x, Mlp(prefix, LayerNorm(prefix, "ln_2", x))]);   // x = x + mlp(ln_2(x))
        return (x, present);
    }

    private (string Output, (string Key, string Value) Present) Attention(
        string prefix, string x, (string Bias, string? Total) mask, (string Key, string Value) past)
    {
        using var _ = _g.Scope("attn");
        string qkv;
        using (_g.Scope("c_attn"))
        {
            qkv = Linear(prefix + "attn.c_attn", x);                                  // (B, T, 3C)
        }

        var (y, present) = PortableAttention(qkv, mask.Bias, past);                 // (B, T, C)
        using (_g.Scope("c_proj"))
        {
            return (Linear(prefix + "attn.c_proj", y), present);                     // (B, T, C)
        }
    }

    /// <summary>
    /// The fused flavour's attention: GroupQueryAttention on the packed q|k|v straight from c_attn, past and present
    /// possibly one buffer (B, H, capacity, D); c_proj without its bias, which the next SkipLayerNormalization adds.
    /// </summary>
    private (string Output, string? Bias, (string Key, string Value) Present) FusedAttention(
        string prefix, string x, (string SeqLensK, string? Total) lengths, (string Key, string Value) past)
    {
        using var _ = _g.Scope("attn");
        string qkv;
        using (_g.Scope("c_attn"))
        {
            qkv = Linear(prefix + "attn.c_attn", x);                                  // (B, T, 3C)
        }

        var outs = _options.Float16Cache
            ? _g.Node(OnnxGptOperators.Float16CacheAttention, [qkv, past.Key, past.Value, lengths.SeqLensK, lengths.Total!], 3, null, OnnxGptOperators.Domain,
                Attr.Int("num_heads", _c.Heads))                                      // the same, the cache float16
            : _g.Node("GroupQueryAttention", [qkv, "", "", past.Key, past.Value, lengths.SeqLensK, lengths.Total!], 3, null, MicrosoftDomain,
                Attr.Int("num_heads", _c.Heads), Attr.Int("kv_num_heads", _c.Heads));   // (B, T, C), present (B, H, S, D) twice
        using (_g.Scope("c_proj"))
        {
            var (y, bias) = LinearDeferredBias(prefix + "attn.c_proj", outs[0]);     // (B, T, C)
            return (y, bias, (outs[1], outs[2]));
        }
    }

    /// <summary>Causal self-attention from standard operators, with the cache as past ⊕ new.</summary>
    private (string Output, (string Key, string Value) Present) PortableAttention(string qkv, string maskBias, (string Key, string Value) past)
    {
        int c = _c.Width, h = _c.Heads, d = _c.HeadSize;

        var split = _g.Node("Split", [qkv, _g.ConstInt64("split_sizes", c, c, c)], 3, null, "", Attr.Int("axis", 2));
        string heads = _g.ConstInt64("heads_shape", 0, 0, h, d);
        string q = SplitHeads("q", split[0], heads);                                  // (B, H, T, D)
        string k = SplitHeads("k", split[1], heads);                                  // (B, H, T, D)
        string v = SplitHeads("v", split[2], heads);                                  // (B, H, T, D)
        string presentKey = _g.Node("Concat", [past.Key, k], 1, "present_key", "", Attr.Int("axis", 2))[0];   // (B, H, S, D)
        string presentValue = _g.Node("Concat", [past.Value, v], 1, "present_value", "", Attr.Int("axis", 2))[0]; // (B, H, S, D)

        string keyT = _g.Node("Transpose", [presentKey], 1, "key_transpose", "", Attr.Ints("perm", 0, 1, 3, 2))[0]; // (B, H, D, S)
        string scores = _g.Named("scores", "MatMul", [q, keyT]);                      // (B, H, T, S)
        string scale = _g.Scalar("scale", _float, (float)(1.0 / Math.Sqrt(d)));
        scores = _g.Named("scaled_scores", "Mul", [scores, scale]);
        scores = _g.Named("masked_scores", "Add", [scores, maskBias]);
        string probs = _g.OpWith("Softmax", [scores], Attr.Int("axis", -1));          // (B, H, T, S)
        string y = _g.Named("weighted_values", "MatMul", [probs, presentValue]);       // (B, H, T, D)
        y = _g.Node("Transpose", [y], 1, "merge_transpose", "", Attr.Ints("perm", 0, 2, 1, 3))[0]; // (B, T, H, D)
        y = _g.Named("merge_heads", "Reshape", [y, _g.ConstInt64("merged_shape", 0, 0, c)]);     // (B, T, C)
        return (y, (presentKey, presentValue));
    }

    private string SplitHeads(string which, string x, string headsShape)
    {
        string r = _g.Named($"{which}_reshape", "Reshape", [x, headsShape]);               // (B, T, H, D)
        return _g.Node("Transpose", [r], 1, $"{which}_transpose", "", Attr.Ints("perm", 0, 2, 1, 3))[0]; // (B, H, T, D)
    }

    private string Mlp(string prefix, string x)
    {
        using var _ = _g.Scope("mlp");
        string hidden = MlpHidden(prefix, x);                                        // (B, T, F)
        using (_g.Scope("c_proj"))
        {
            return Linear(prefix + "mlp.c_proj", hidden);                             // (B, T, C)
        }
    }

    /// <summary>The fused flavour's MLP: c_proj without its bias, which the next SkipLayerNormalization adds.</summary>
    private (string Output, string? Bias) FusedMlp(string prefix, string x)
    {
        using var _ = _g.Scope("mlp");
        string hidden = MlpHidden(prefix, x);                                        // (B, T, F)
        using (_g.Scope("c_proj"))
        {
            return LinearDeferredBias(prefix + "mlp.c_proj", hidden);                // (B, T, C)
        }
    }

    /// <summary>act(c_fc(x)), (B, T, F), in the current (mlp) scope.</summary>
    private string MlpHidden(string prefix, string x)
    {
        string hidden;
        using (_g.Scope("c_fc"))
        {
            hidden = Linear(prefix + "mlp.c_fc", x);                                  // (B, T, F)
        }

        using (_g.Scope("act"))
        {
            return _c.Activation switch
            {
                Activation.GeluNew => _g.OpWith("Gelu", [hidden], Attr.String("approximate", "tanh")),
                Activation.Gelu => _g.Op("Gelu", hidden),
                Activation.Relu => _g.Op("Relu", hidden),
                Activation.Silu => Silu(hidden),
                _ => throw new InvalidOperationException($"activation {_c.Activation} has no graph form."),
            };
        }
    }

    /// <summary>x @ W, and the name of the bias b (null without biases), which the caller adds elsewhere.</summary>
    private (string Output, string? Bias) LinearDeferredBias(string name, string x)
    {
        string y = _options.Quantization == WeightQuantization.None
            ? _g.Op("MatMul", x, Weight(name + ".weight"))
            : QuantizedMatMul(name + ".weight", x, transposeConv1D: true);
        return (y, _c.Bias ? Weight(name + ".bias") : null);
    }

    /// <summary>x @ W (+ b), with W in Conv1D layout [in, out].</summary>
    private string Linear(string name, string x)
    {
        string y = _options.Quantization == WeightQuantization.None
            ? _g.Op("MatMul", x, Weight(name + ".weight"))
            : QuantizedMatMul(name + ".weight", x, transposeConv1D: true);
        return _c.Bias ? _g.Op("Add", y, Weight(name + ".bias")) : y;
    }

    /// <summary>
    /// x @ W through <c>MatMulNBits</c>: W is stored as N rows of K (Conv1D weights [K, N] are transposed first; the
    /// head [V, C] already is), cut into blocks with one scale each. Activations are quantized to int8 per block
    /// inside the kernel (accuracy level 4), which is what makes it fast on CPUs with int8 dot products.
    /// </summary>
    private string QuantizedMatMul(string name, string x, bool transposeConv1D) => QuantizedMatMul(name, _w[name], x, transposeConv1D);

    /// <summary><see cref="QuantizedMatMul(string, string, bool)"/> for a tensor that need not be a checkpoint's (a concatenation of several).</summary>
    private string QuantizedMatMul(string name, Tensor tensor, string x, bool transposeConv1D)
    {
        int rowsIn = tensor.Shape[0], colsIn = tensor.Shape[1];
        int n = transposeConv1D ? colsIn : rowsIn, k = transposeConv1D ? rowsIn : colsIn;
        int bits = _options.Quantization == WeightQuantization.Int4 ? 4 : 8, block = _options.BlockSize;
        string quantName = $"{name}.q{bits}", scaleName = $"{name}.scales";
        if (_added.Add(quantName))
        {
            float[] rows = transposeConv1D ? Transpose(tensor.Data, rowsIn, colsIn) : tensor.Data;
            var (packed, scales) = BlockQuantizer.Quantize(rows, n, k, bits, block);
            int blocks = (k + block - 1) / block;
            _g.Initializer(_initializer(new WeightData(quantName, [n, blocks, block * bits / 8], DataType.Uint8, packed)));
            _g.Initializer(_initializer(new WeightData(scaleName, [(long)n * blocks], scales)));
        }

        return _g.Node("MatMulNBits", [x, quantName, scaleName], 1, null, MicrosoftDomain,
            Attr.Int("K", k), Attr.Int("N", n), Attr.Int("bits", bits), Attr.Int("block_size", block), Attr.Int("accuracy_level", 4))[0];
    }

    private static float[] Transpose(float[] data, int rows, int cols)
    {
        var result = new float[data.Length];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
            {
                result[(long)c * rows + r] = data[(long)r * cols + c];
            }
        }

        return result;
    }

    /// <summary>A block's layer norm (<c>ln_1</c>, <c>ln_2</c>) in its own scope.</summary>
    private string LayerNorm(string blockPrefix, string scope, string x)
    {
        using var _ = _g.Scope(scope);
        return LayerNorm(blockPrefix + scope, x);
    }

    private string LayerNorm(string name, string x)
    {
        var inputs = _c.Bias ? new[] { x, Weight(name + ".weight"), Weight(name + ".bias") } : [x, Weight(name + ".weight")];
        return _g.Node("LayerNormalization", inputs, 1, null, "",
            Attr.Int("axis", -1), Attr.Float("epsilon", (float)_c.LayerNormEpsilon))[0];
    }

    /// <summary>
    /// logits = x @ head^T, head being wte (tied) or lm_head.weight, both [V, C]; Gemm reads it transposed in place.
    /// With <paramref name="logitsToKeep"/> (fused graph) only the last k positions are projected (0 keeps all).
    /// </summary>
    private string Head(string x, string? logitsToKeep)
    {
        if (logitsToKeep is not null)
        {
            string start = _g.Named("keep_start", "Neg", [_g.Named("keep_count", "Unsqueeze", [logitsToKeep, _g.ConstInt64("axis0", 0)])]);
            x = _g.Named("keep_last", "Slice", [x, start, _g.ConstInt64("keep_end", long.MaxValue), _g.ConstInt64("keep_axis", 1)]); // (B, T', C)
        }

        string headName = GptWeights.HeadName(_c);
        if (_options.Quantization != WeightQuantization.None)
        {
            return QuantizedMatMul(headName, x, transposeConv1D: false);                                  // (B, T', V)
        }

        string head = Weight(headName);
        string flat = _g.Named("flatten", "Reshape", [x, _g.ConstInt64("flat_shape", -1, _c.Width)]);    // (B*T', C)
        string logits = _g.Node("Gemm", [flat, head], 1, null, "", Attr.Int("transB", 1))[0];            // (B*T', V)
        string shape = _g.Named("logits_shape", "Concat",
            [_g.Node("Shape", [x], 1, "batch_and_time", "", Attr.Int("start", 0), Attr.Int("end", 2))[0], _g.ConstInt64("vocab", _c.VocabSize)],
            Attr.Int("axis", 0));
        logits = _g.Named("unflatten", "Reshape", [logits, shape]);                                      // (B, T', V)
        // Logits leave the graph as float32 whatever the precision inside, so hosts read one type.
        return _float == DataType.Float ? logits : _g.Node("Cast", [logits], 1, "logits_float", "", Attr.Int("to", (long)DataType.Float))[0];
    }

    private static byte[] ToHalfBytes(float[] values)
    {
        var half = new Half[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            half[i] = (Half)values[i];   // round to nearest even
        }

        return System.Runtime.InteropServices.MemoryMarshal.AsBytes(half.AsSpan()).ToArray();
    }

    /// <summary>The initializer for a checkpoint tensor, added on first use (a tied head reuses wte).</summary>
    private string Weight(string name) => Weight(name, () => _w[name]);

    /// <summary>An initializer made on first use from <paramref name="make"/>, in the graph's float type.</summary>
    private string Weight(string name, Func<Tensor> make)
    {
        if (_added.Add(name))
        {
            var tensor = make();
            _g.Initializer(_initializer(_float == DataType.Float
                ? new WeightData(name, tensor)
                : new WeightData(name, tensor.Shape.Select(d => (long)d).ToArray(), DataType.Float16, ToHalfBytes(tensor.Data))));
        }

        return name;
    }
}

using System.Globalization;
using Microsoft.ML.OnnxRuntime.Tensors;
using Microsoft.ML.OnnxRuntime;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Model;

/// <summary>
/// What a decoder graph's inputs and outputs say about it, read from ONNX Runtime's metadata: the I/O convention,
/// element types, which optional inputs exist, and the cache shape. The names bound are the convention's
/// (<see cref="GraphNames"/>), or the ones a <c>genai_config.json</c> declares. Conventions understood:
/// <list type="bullet">
/// <item><see cref="IoConventions.Optimum"/>: <c>past_key_values.{i}.key|value</c> (B, H, P, D) in,
/// <c>present.{i}.key|value</c> (B, H, P+T, D) out; a merged decoder may add a <c>use_cache_branch</c> input.</item>
/// <item><see cref="IoConventions.OrtGpt2"/>: one stacked <c>past_{i}</c> (2, B, H, P, D) in, <c>present_{i}</c> out,
/// usually with int32 ids (GenAI's <c>past_names</c> / <c>present_names</c>).</item>
/// <item><see cref="ModelZooConvention"/>: the ONNX Model Zoo's GPT-2 (<c>gpt2-lm-head-10.onnx</c>, exported from
/// PyTorch by its <c>GPT2-export.py</c>): one int64 input <c>input1</c> (d0, d1, T), output <c>output1</c> (d0, d1, T, V)
/// of logits, then <c>output2</c>.. the stacked presents (2, d0·d1, H, T, D) of each layer; no past inputs, no mask,
/// positions from 0. It is run on the whole sequence each step, rows as (B, 1, T).</item>
/// </list>
/// A graph with no past inputs at all is <see cref="NoCacheConvention"/>: it is run on the whole sequence each step.
/// </summary>
public sealed class ModelSignature
{
    /// <summary>The convention of a graph without past inputs.</summary>
    public const string NoCacheConvention = "no-cache";

    /// <summary>The ONNX Model Zoo's GPT-2: <c>input1</c> (d0, d1, T) → <c>output1</c> (d0, d1, T, V) and stacked presents, no past inputs.</summary>
    public const string ModelZooConvention = "onnx-model-zoo";

    /// <summary>The Model Zoo's input and first output names (PyTorch's defaults when its exporter named none).</summary>
    internal const string ZooInput = "input1";

    /// <inheritdoc cref="ZooInput"/>
    internal const string ZooLogits = "output1";

    private ModelSignature(string convention, GraphIoNames names, TensorElementType idsType, TensorElementType? maskType,
        TensorElementType? positionType, bool useCacheBranch, IReadOnlyList<CacheTensor> cache, int? heads, int? headSize, int? vocab,
        bool fused, bool logitsToKeep, TensorElementType cacheType, int idsRank, int? presentLayers, IReadOnlySet<string> outputNames,
        bool fixedLogits, TensorElementType logitsType)
    {
        HasFixedLogitsShape = fixedLogits;
        LogitsElementType = logitsType;
        IsFused = fused;
        Names = names;
        CacheElementType = cacheType;
        HasLogitsToKeep = logitsToKeep;
        Convention = convention;
        InputIdsType = idsType;
        AttentionMaskType = maskType;
        PositionIdsType = positionType;
        HasUseCacheBranch = useCacheBranch;
        CacheTensors = cache;
        Heads = heads;
        HeadSize = headSize;
        VocabSize = vocab;
        InputIdsRank = idsRank;
        OutputNames = outputNames;
        Layers = convention == IoConventions.Optimum ? cache.Count / 2 : cache.Count;
        PresentLayers = presentLayers;
    }

    /// <summary>The element type of the past/present tensors: float32, or float16 for a float16 export.</summary>
    public TensorElementType CacheElementType { get; }

    /// <summary><see cref="IoConventions.Optimum"/>, <see cref="IoConventions.OrtGpt2"/>, <see cref="ModelZooConvention"/> or <see cref="NoCacheConvention"/>.</summary>
    public string Convention { get; }

    /// <summary>Element type of <c>input_ids</c> (int64 or int32).</summary>
    public TensorElementType InputIdsType { get; }

    /// <summary>Element type of <c>attention_mask</c> (int64, int32 or float), or null when the graph has none.</summary>
    public TensorElementType? AttentionMaskType { get; }

    /// <summary>Element type of <c>position_ids</c>, or null when the graph computes positions itself.</summary>
    public TensorElementType? PositionIdsType { get; }

    /// <summary>A merged decoder's boolean <c>use_cache_branch</c> input.</summary>
    public bool HasUseCacheBranch { get; }

    /// <summary>Number of layers with a cache (0 for <see cref="NoCacheConvention"/>).</summary>
    public int Layers { get; }

    /// <summary>
    /// Layers the graph shows in its outputs when it takes no past (a first-step decoder's <c>present.{i}.*</c>, the
    /// Model Zoo's stacked presents); null when it shows none.
    /// </summary>
    public int? PresentLayers { get; }

    /// <summary>Attention heads, when the past inputs give the number; null when that dimension is symbolic.</summary>
    public int? Heads { get; }

    /// <summary>Head size, when the past inputs give it; null when that dimension is symbolic.</summary>
    public int? HeadSize { get; }

    /// <summary>Vocabulary size, when the logits output gives it.</summary>
    public int? VocabSize { get; }

    /// <summary>Whether the graph takes past keys and values.</summary>
    public bool HasCache => CacheTensors.Count > 0;

    /// <summary>
    /// OnnxGpt's fused graph flavour (GroupQueryAttention): past and present share one buffer per cache tensor of
    /// shape (B, H, capacity, D), written in place, and each row's tokens start at cache position 0 (its length is
    /// carried by the attention mask). The generator keeps such a cache right-padded (see <see cref="Generation.KvCache.IsInPlace"/>).
    /// </summary>
    public bool IsFused { get; }

    /// <summary>
    /// The graph has the optional int64 scalar input <c>num_logits_to_keep</c> (an overridable initializer,
    /// default 0 = every position): k &gt; 0 projects only the last k positions to logits.
    /// </summary>
    public bool HasLogitsToKeep { get; }

    /// <summary>The names bound to the graph's inputs and outputs.</summary>
    internal GraphIoNames Names { get; }

    /// <summary>2 for (B, T) ids and (B, T, V) logits; 3 for the Model Zoo's (B, 1, T) ids and (B, 1, T, V) logits.</summary>
    internal int InputIdsRank { get; }

    /// <summary>
    /// The logits output declares fixed batch or sequence sizes (the Model Zoo's, traced at batch 1 and 8 tokens).
    /// ONNX Runtime refuses a bound output buffer of another shape, so such logits are bound to the device and copied.
    /// </summary>
    internal bool HasFixedLogitsShape { get; }

    /// <summary>
    /// The element type of the logits: float32, or float16 in a graph exported in half precision (Optimum's and
    /// transformers.js' <c>_fp16</c> and <c>_q4f16</c> files). Float16 logits are widened to float32 for the sampler.
    /// </summary>
    public TensorElementType LogitsElementType { get; }

    /// <summary>
    /// The logits cannot be written straight into the step's float32 buffer (<see cref="HasFixedLogitsShape"/>, or
    /// float16 logits): ONNX Runtime allocates them and the step copies (and widens) them.
    /// </summary>
    internal bool CopiesLogits => HasFixedLogitsShape || LogitsElementType == TensorElementType.Float16;

    /// <summary>Every output name of the graph.</summary>
    internal IReadOnlySet<string> OutputNames { get; }

    /// <summary>The cache tensors in binding order: for Optimum key then value of each layer; for ORT GPT-2 one per layer.</summary>
    internal IReadOnlyList<CacheTensor> CacheTensors { get; }

    /// <summary>One past input and the present output it pairs with.</summary>
    /// <param name="Past">The graph input holding the cache so far.</param>
    /// <param name="Present">The graph output holding the cache with the new tokens.</param>
    /// <param name="Stacked">(2, B, H, P, D) rather than (B, H, P, D).</param>
    internal sealed record CacheTensor(string Past, string Present, bool Stacked);

    /// <summary>
    /// Reads the signature of <paramref name="session"/>; <paramref name="source"/> names the model file in messages,
    /// <paramref name="names"/> the I/O names to look for (the convention's by default).
    /// </summary>
    internal static ModelSignature Read(InferenceSession session, string source, GraphIoNames? names = null)
    {
        names ??= GraphIoNames.Default;
        var inputs = session.InputMetadata;
        var outputs = session.OutputMetadata;
        if (!names.Declared && !inputs.ContainsKey(names.InputIds) && inputs.ContainsKey(ZooInput) && outputs.ContainsKey(ZooLogits))
        {
            return ReadModelZoo(session, source, names);
        }

        var ids = Require(inputs, names.InputIds, source, "input", names);
        CheckType(ids, names.InputIds, source, TensorElementType.Int64, TensorElementType.Int32);
        CheckRank(ids, names.InputIds, source, 2, "batch, sequence");
        TensorElementType? maskType = null;
        if (inputs.TryGetValue(names.AttentionMask, out var mask))
        {
            CheckType(mask, names.AttentionMask, source, TensorElementType.Int64, TensorElementType.Int32, TensorElementType.Float);
            CheckRank(mask, names.AttentionMask, source, 2, "batch, total sequence");
            maskType = mask.ElementDataType;
        }

        TensorElementType? positionType = null;
        if (inputs.TryGetValue(names.PositionIds, out var positions))
        {
            CheckType(positions, names.PositionIds, source, TensorElementType.Int64, TensorElementType.Int32);
            CheckRank(positions, names.PositionIds, source, 2, "batch, sequence");
            positionType = positions.ElementDataType;
        }

        bool useCacheBranch = false;
        if (inputs.TryGetValue(GraphNames.UseCacheBranch, out var branch))
        {
            CheckType(branch, GraphNames.UseCacheBranch, source, TensorElementType.Bool);
            useCacheBranch = true;
        }

        var logits = Require(outputs, names.Logits, source, "output", names);
        CheckType(logits, names.Logits, source, TensorElementType.Float, TensorElementType.Float16);
        CheckRank(logits, names.Logits, source, 3, "batch, sequence, vocabulary");
        int? vocab = logits.Dimensions[2] > 0 ? logits.Dimensions[2] : null;

        var cache = new List<CacheTensor>();
        TensorElementType? cacheType = null;
        string convention;
        int? heads = null, headSize = null, presentLayers = null;
        bool stacked = names.DeclaresStackedCache || (!names.Declared && !inputs.ContainsKey(Indexed(names.PastKey, 0)) && inputs.ContainsKey(Indexed(names.Past, 0)));
        if (stacked && inputs.ContainsKey(Indexed(names.Past, 0)))
        {
            convention = IoConventions.OrtGpt2;
            for (int i = 0; inputs.ContainsKey(Indexed(names.Past, i)); i++)
            {
                string past = Indexed(names.Past, i), present = Indexed(names.Present, i);
                var meta = inputs[past];
                cacheType = CheckCache(meta, past, source, 5, cacheType);
                Require(outputs, present, source, "output", names);
                (heads, headSize) = HeadsFrom(meta, 2, heads, headSize, past, source);
                cache.Add(new CacheTensor(past, present, Stacked: true));
            }
        }
        else if (!stacked && inputs.ContainsKey(Indexed(names.PastKey, 0)))
        {
            convention = IoConventions.Optimum;
            for (int i = 0; inputs.ContainsKey(Indexed(names.PastKey, i)); i++)
            {
                foreach (var (past, present) in new[] { (Indexed(names.PastKey, i), Indexed(names.PresentKey, i)), (Indexed(names.PastValue, i), Indexed(names.PresentValue, i)) })
                {
                    var meta = Require(inputs, past, source, "input", names);
                    cacheType = CheckCache(meta, past, source, 4, cacheType);
                    Require(outputs, present, source, "output", names);
                    (heads, headSize) = HeadsFrom(meta, 1, heads, headSize, past, source);
                    cache.Add(new CacheTensor(past, present, Stacked: false));
                }
            }
        }
        else
        {
            convention = NoCacheConvention;
            // A first-step decoder (Optimum's decoder_model.onnx) shows the cache it starts in its present outputs.
            string first = stacked ? Indexed(names.Present, 0) : Indexed(names.PresentKey, 0);
            if (outputs.TryGetValue(first, out var present0))
            {
                int count = 0;
                while (outputs.ContainsKey(stacked ? Indexed(names.Present, count) : Indexed(names.PresentKey, count)))
                {
                    count++;
                }

                presentLayers = count;
                if (present0.IsTensor && present0.Dimensions.Length == (stacked ? 5 : 4))
                {
                    (heads, headSize) = HeadsFrom(present0, stacked ? 2 : 1, null, null, first, source);
                }
            }
        }

        // Past inputs must be numbered 0..L-1 with nothing left over (a gap means a graph we do not understand).
        var known = new HashSet<string>(StringComparer.Ordinal) { names.InputIds, names.AttentionMask, names.PositionIds, GraphNames.UseCacheBranch };
        foreach (var c in cache)
        {
            known.Add(c.Past);
        }

        foreach (var name in inputs.Keys)
        {
            if (!known.Contains(name))
            {
                throw new OnnxGptException(
                    $"{source}: graph input '{name}' is not one this runtime knows how to feed; expected {names.InputIds}, {names.AttentionMask}, " +
                    $"{names.PositionIds}, {GraphNames.UseCacheBranch} and {Plain(names.PastKey)}|{Plain(names.PastValue)} (or {Plain(names.Past)}) numbered from 0" +
                    (names.Declared ? " (the names its genai_config.json declares)." : "."));
            }
        }

        bool logitsToKeep = session.OverridableInitializerMetadata.TryGetValue(GraphNames.LogitsToKeep, out var keep)
            && keep.IsTensor && keep.ElementDataType == TensorElementType.Int64;
        bool fused = session.OverridableInitializerMetadata.ContainsKey(GraphNames.LogitsToKeep)
            || (session.ModelMetadata.CustomMetadataMap.TryGetValue(MetadataKeys.GraphFlavor, out var flavor) && flavor == "fused");
        return new ModelSignature(convention, names, ids.ElementDataType, maskType, positionType, useCacheBranch, cache, heads, headSize, vocab, fused,
            logitsToKeep, cacheType ?? TensorElementType.Float, idsRank: 2, presentLayers, outputs.Keys.ToHashSet(StringComparer.Ordinal), FixedLeading(logits),
            logits.ElementDataType);
    }

    /// <summary>
    /// The Model Zoo's GPT-2: <c>input1</c> int64 (d0, d1, T) and nothing else; <c>output1</c> float (d0, d1, T, V);
    /// <c>output2</c>, <c>output3</c>, ... the stacked (2, d0·d1, H, T, D) presents, one per layer. Its declared output
    /// shapes are fixed at the sizes the exporter traced (batch 1, 8 tokens), so only the vocabulary, head count and
    /// head size are read from them.
    /// </summary>
    private static ModelSignature ReadModelZoo(InferenceSession session, string source, GraphIoNames names)
    {
        var inputs = session.InputMetadata;
        var outputs = session.OutputMetadata;
        foreach (var name in inputs.Keys)
        {
            if (name != ZooInput)
            {
                throw new OnnxGptException(
                    $"{source}: a graph with the ONNX Model Zoo's GPT-2 input '{ZooInput}' has another input '{name}'; the Model Zoo's layout has " +
                    $"'{ZooInput}' alone (token ids, (d0, d1, T)).");
            }
        }

        var ids = inputs[ZooInput];
        CheckType(ids, ZooInput, source, TensorElementType.Int64, TensorElementType.Int32);
        CheckRank(ids, ZooInput, source, 3, "d0, d1, sequence: the Model Zoo's token ids");
        var logits = outputs[ZooLogits];
        CheckType(logits, ZooLogits, source, TensorElementType.Float);
        CheckRank(logits, ZooLogits, source, 4, "d0, d1, sequence, vocabulary: the Model Zoo's logits");
        int? vocab = logits.Dimensions[3] > 0 ? logits.Dimensions[3] : null;
        int? heads = null, headSize = null;
        int layers = 0;
        for (int i = 2; outputs.TryGetValue("output" + i.ToString(CultureInfo.InvariantCulture), out var present); i++)
        {
            string name = "output" + i.ToString(CultureInfo.InvariantCulture);
            if (!present.IsTensor || present.Dimensions.Length != 5)
            {
                throw new OnnxGptException($"{source}: Model Zoo output '{name}' has rank {(present.IsTensor ? present.Dimensions.Length : 0)}; expected 5 (2, batch, heads, sequence, head_size), a layer's stacked present.");
            }

            (heads, headSize) = HeadsFrom(present, 2, heads, headSize, name, source);
            layers++;
        }

        var zooNames = names with { InputIds = ZooInput, Logits = ZooLogits };
        return new ModelSignature(ModelZooConvention, zooNames, ids.ElementDataType, null, null, false, [], heads, headSize, vocab, fused: false,
            logitsToKeep: false, TensorElementType.Float, idsRank: 3, layers == 0 ? null : layers, outputs.Keys.ToHashSet(StringComparer.Ordinal), FixedLeading(logits),
            TensorElementType.Float);
    }

    /// <summary>
    /// Checks that <paramref name="first"/>, Optimum's first-step decoder, goes with <paramref name="withPast"/>, the
    /// decoder for every later step: no past inputs, the same token inputs and element types, the same logits, and a
    /// present output of the same shape under every name the later steps read as their past.
    /// </summary>
    /// <exception cref="OnnxGptException">They differ; the message names both files and what differs.</exception>
    internal static void CheckPair(ModelSignature first, string firstSource, ModelSignature withPast, string withPastSource)
    {
        OnnxGptException Differ(string what) => new(
            $"'{firstSource}' and '{withPastSource}' do not make one decoder: {what}. Export both from the same model (Optimum's decoder_model.onnx and decoder_with_past_model.onnx).");

        if (first.HasCache)
        {
            throw Differ($"the first-step decoder takes past inputs ({first.CacheTensors[0].Past}); expected none");
        }

        if (!withPast.HasCache)
        {
            throw Differ("the decoder with past takes no past inputs");
        }

        if (first.InputIdsType != withPast.InputIdsType || first.AttentionMaskType != withPast.AttentionMaskType || first.PositionIdsType != withPast.PositionIdsType)
        {
            throw Differ($"their token inputs differ (ids {first.InputIdsType} / {withPast.InputIdsType}, attention mask " +
                $"{Show(first.AttentionMaskType)} / {Show(withPast.AttentionMaskType)}, position ids {Show(first.PositionIdsType)} / {Show(withPast.PositionIdsType)})");
        }

        if (first.VocabSize != withPast.VocabSize)
        {
            throw Differ($"their logits have {Format(first.VocabSize)} and {Format(withPast.VocabSize)} entries per token");
        }

        foreach (var tensor in withPast.CacheTensors)
        {
            if (!first.OutputNames.Contains(tensor.Present))
            {
                throw Differ($"the first-step decoder has no output '{tensor.Present}', which the later steps take back as '{tensor.Past}'");
            }
        }

        if (first.PresentLayers != withPast.Layers || (first.Heads, first.HeadSize) != (withPast.Heads, withPast.HeadSize))
        {
            throw Differ($"the first step's cache has {Format(first.PresentLayers)} layers of {Format(first.Heads)} heads of size {Format(first.HeadSize)}, " +
                $"the later steps' {withPast.Layers} layers of {Format(withPast.Heads)} heads of size {Format(withPast.HeadSize)}");
        }

        static string Show(TensorElementType? type) => type?.ToString() ?? "none";
    }

    private static string Indexed(string pattern, int layer) => GraphNames.Indexed(pattern, layer);

    /// <summary>Whether any dimension but the last (the vocabulary) is declared as a number.</summary>
    private static bool FixedLeading(NodeMetadata meta) => meta.Dimensions[..^1].Any(d => d > 0);

    private static string Plain(string pattern) => pattern.Replace("%d", "{i}", StringComparison.Ordinal);

    private static void CheckRank(NodeMetadata meta, string name, string source, int rank, string axes)
    {
        if (meta.IsTensor && meta.Dimensions.Length != rank)
        {
            throw new OnnxGptException($"{source}: '{name}' has rank {meta.Dimensions.Length}; expected {rank} ({axes}).");
        }
    }

    private static NodeMetadata Require(IReadOnlyDictionary<string, NodeMetadata> map, string name, string source, string kind, GraphIoNames names)
    {
        if (map.TryGetValue(name, out var meta))
        {
            return meta;
        }

        throw new OnnxGptException(
            $"{source}: the graph has no {kind} '{name}'; its {kind}s are {string.Join(", ", map.Keys)}. Expected a decoder-only " +
            $"language model with {names.InputIds} and {names.Logits} (and {Plain(names.PastKey)}|{Plain(names.PastValue)} → " +
            $"{Plain(names.PresentKey)}|{Plain(names.PresentValue)} for a KV cache" +
            (names.Declared ? ", as its genai_config.json names them)." : $"; or the ONNX Model Zoo's GPT-2, {ZooInput} → {ZooLogits})."));
    }

    private static void CheckType(NodeMetadata meta, string name, string source, params TensorElementType[] allowed)
    {
        if (!meta.IsTensor || Array.IndexOf(allowed, meta.ElementDataType) < 0)
        {
            string found = meta.IsTensor ? meta.ElementDataType.ToString() : meta.OnnxValueType.ToString();
            throw new OnnxGptException(
                $"{source}: '{name}' has element type {found}; expected {string.Join(" or ", allowed)}.");
        }
    }

    /// <summary>Checks one past input and returns its element type, which every past input must share.</summary>
    private static TensorElementType CheckCache(NodeMetadata meta, string name, string source, int rank, TensorElementType? expected)
    {
        if (expected is { } type)
        {
            CheckType(meta, name, source, type);
        }
        else
        {
            CheckType(meta, name, source, TensorElementType.Float, TensorElementType.Float16);
        }

        if (meta.Dimensions.Length != rank)
        {
            throw new OnnxGptException(
                $"{source}: '{name}' has rank {meta.Dimensions.Length}; expected {rank} ({(rank == 4 ? "batch, heads, past, head_size" : "2, batch, heads, past, head_size")}).");
        }

        return meta.ElementDataType;
    }

    private static (int? Heads, int? HeadSize) HeadsFrom(NodeMetadata meta, int headAxis, int? heads, int? headSize, string name, string source)
    {
        int? h = meta.Dimensions[headAxis] > 0 ? meta.Dimensions[headAxis] : null;
        int? d = meta.Dimensions[headAxis + 2] > 0 ? meta.Dimensions[headAxis + 2] : null;
        if ((heads is not null && h is not null && h != heads) || (headSize is not null && d is not null && d != headSize))
        {
            throw new OnnxGptException(
                $"{source}: '{name}' has {Format(h)} heads of size {Format(d)}, but earlier layers have {Format(heads)} of size {Format(headSize)}.");
        }

        return (heads ?? h, headSize ?? d);
    }

    private static string Format(int? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "?";
}

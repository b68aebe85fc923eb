using System.Globalization;
using Microsoft.ML.OnnxRuntime.Tensors;
using Microsoft.ML.OnnxRuntime;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Model;

/// <summary>
/// What a decoder graph's inputs and outputs say about it, read from ONNX Runtime's metadata: the I/O convention,
/// element types, which optional inputs exist, and the cache shape. Two conventions are understood:
/// <list type="bullet">
/// <item><see cref="IoConventions.Optimum"/>: <c>past_key_values.{i}.key|value</c> (B, H, P, D) in,
/// <c>present.{i}.key|value</c> (B, H, P+T, D) out; a merged decoder may add a <c>use_cache_branch</c> input.</item>
/// <item><see cref="IoConventions.OrtGpt2"/>: one stacked <c>past_{i}</c> (2, B, H, P, D) in, <c>present_{i}</c> out,
/// usually with int32 ids.</item>
/// </list>
/// A graph with no past inputs at all is <see cref="NoCacheConvention"/>: it is run on the whole sequence each step.
/// </summary>
public sealed class ModelSignature
{
    /// <summary>The convention of a graph without past inputs.</summary>
    public const string NoCacheConvention = "no-cache";

    private ModelSignature(string convention, TensorElementType idsType, TensorElementType? maskType,
        TensorElementType? positionType, bool useCacheBranch, IReadOnlyList<CacheTensor> cache, int? heads, int? headSize, int? vocab,
        bool fused, bool logitsToKeep, TensorElementType cacheType)
    {
        IsFused = fused;
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
        Layers = convention == IoConventions.Optimum ? cache.Count / 2 : cache.Count;
    }

    /// <summary>The element type of the past/present tensors: float32, or float16 for a float16 export.</summary>
    public TensorElementType CacheElementType { get; }

    /// <summary><see cref="IoConventions.Optimum"/>, <see cref="IoConventions.OrtGpt2"/> or <see cref="NoCacheConvention"/>.</summary>
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

    /// <summary>The cache tensors in binding order: for Optimum key then value of each layer; for ORT GPT-2 one per layer.</summary>
    internal IReadOnlyList<CacheTensor> CacheTensors { get; }

    /// <summary>One past input and the present output it pairs with.</summary>
    /// <param name="Past">The graph input holding the cache so far.</param>
    /// <param name="Present">The graph output holding the cache with the new tokens.</param>
    /// <param name="Stacked">(2, B, H, P, D) rather than (B, H, P, D).</param>
    internal sealed record CacheTensor(string Past, string Present, bool Stacked);

    /// <summary>Reads the signature of <paramref name="session"/>; <paramref name="source"/> names the model file in messages.</summary>
    internal static ModelSignature Read(InferenceSession session, string source)
    {
        var inputs = session.InputMetadata;
        var outputs = session.OutputMetadata;

        var ids = Require(inputs, GraphNames.InputIds, source, "input");
        CheckType(ids, GraphNames.InputIds, source, TensorElementType.Int64, TensorElementType.Int32);
        TensorElementType? maskType = null;
        if (inputs.TryGetValue(GraphNames.AttentionMask, out var mask))
        {
            CheckType(mask, GraphNames.AttentionMask, source, TensorElementType.Int64, TensorElementType.Int32, TensorElementType.Float);
            maskType = mask.ElementDataType;
        }

        TensorElementType? positionType = null;
        if (inputs.TryGetValue(GraphNames.PositionIds, out var positions))
        {
            CheckType(positions, GraphNames.PositionIds, source, TensorElementType.Int64, TensorElementType.Int32);
            positionType = positions.ElementDataType;
        }

        bool useCacheBranch = false;
        if (inputs.TryGetValue(GraphNames.UseCacheBranch, out var branch))
        {
            CheckType(branch, GraphNames.UseCacheBranch, source, TensorElementType.Bool);
            useCacheBranch = true;
        }

        var logits = Require(outputs, GraphNames.Logits, source, "output");
        CheckType(logits, GraphNames.Logits, source, TensorElementType.Float);
        int? vocab = logits.Dimensions is { Length: 3 } ld && ld[2] > 0 ? ld[2] : null;

        var cache = new List<CacheTensor>();
        TensorElementType? cacheType = null;
        string convention;
        int? heads = null, headSize = null;
        if (inputs.ContainsKey(GraphNames.PastKey(0)))
        {
            convention = IoConventions.Optimum;
            for (int i = 0; inputs.ContainsKey(GraphNames.PastKey(i)); i++)
            {
                foreach (var (past, present) in new[] { (GraphNames.PastKey(i), GraphNames.PresentKey(i)), (GraphNames.PastValue(i), GraphNames.PresentValue(i)) })
                {
                    var meta = Require(inputs, past, source, "input");
                    cacheType = CheckCache(meta, past, source, 4, cacheType);
                    Require(outputs, present, source, "output");
                    (heads, headSize) = HeadsFrom(meta, 1, heads, headSize, past, source);
                    cache.Add(new CacheTensor(past, present, Stacked: false));
                }
            }
        }
        else if (inputs.ContainsKey(GraphNames.StackedPast(0)))
        {
            convention = IoConventions.OrtGpt2;
            for (int i = 0; inputs.ContainsKey(GraphNames.StackedPast(i)); i++)
            {
                string past = GraphNames.StackedPast(i), present = GraphNames.StackedPresent(i);
                var meta = inputs[past];
                cacheType = CheckCache(meta, past, source, 5, cacheType);
                Require(outputs, present, source, "output");
                (heads, headSize) = HeadsFrom(meta, 2, heads, headSize, past, source);
                cache.Add(new CacheTensor(past, present, Stacked: true));
            }
        }
        else
        {
            convention = NoCacheConvention;
        }

        // Past inputs must be numbered 0..L-1 with nothing left over (a gap means a graph we do not understand).
        var known = new HashSet<string>(StringComparer.Ordinal) { GraphNames.InputIds, GraphNames.AttentionMask, GraphNames.PositionIds, GraphNames.UseCacheBranch };
        foreach (var c in cache)
        {
            known.Add(c.Past);
        }

        foreach (var name in inputs.Keys)
        {
            if (!known.Contains(name))
            {
                throw new OnnxGptException(
                    $"{source}: graph input '{name}' is not one this runtime knows how to feed; expected input_ids, attention_mask, " +
                    "position_ids, use_cache_branch and past_key_values.{i}.key|value (or past_{i}) numbered from 0.");
            }
        }

        bool logitsToKeep = session.OverridableInitializerMetadata.TryGetValue(GraphNames.LogitsToKeep, out var keep)
            && keep.IsTensor && keep.ElementDataType == TensorElementType.Int64;
        bool fused = session.OverridableInitializerMetadata.ContainsKey(GraphNames.LogitsToKeep)
            || (session.ModelMetadata.CustomMetadataMap.TryGetValue(MetadataKeys.GraphFlavor, out var flavor) && flavor == "fused");
        return new ModelSignature(convention, ids.ElementDataType, maskType, positionType, useCacheBranch, cache, heads, headSize, vocab, fused, logitsToKeep, cacheType ?? TensorElementType.Float);
    }

    private static NodeMetadata Require(IReadOnlyDictionary<string, NodeMetadata> map, string name, string source, string kind)
    {
        if (map.TryGetValue(name, out var meta))
        {
            return meta;
        }

        throw new OnnxGptException(
            $"{source}: the graph has no {kind} '{name}'; its {kind}s are {string.Join(", ", map.Keys)}. Expected a decoder-only " +
            "language model with input_ids and logits (and past_key_values.{i}.key|value → present.{i}.key|value for a KV cache).");
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

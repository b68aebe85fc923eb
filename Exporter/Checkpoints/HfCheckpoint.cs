using System.Runtime.InteropServices;
using System.Text.Json;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Exporter.Checkpoints;

/// <summary>
/// Reads and writes Hugging Face GPT-2 and Llama (<c>LlamaForCausalLM</c>) checkpoint folders: <c>config.json</c>
/// plus <c>model.safetensors</c> (or shards listed in <c>model.safetensors.index.json</c>). The config's
/// <c>model_type</c> picks the family (see <see cref="GptConfig.FromJson"/>); a Llama folder's q_proj/k_proj rows are
/// in Hugging Face's rotate-half order, and <c>rope_scaling</c> kinds this project does not implement are refused.
/// <para>
/// Loading accepts names with or without the <c>transformer.</c> prefix, F32/F16/BF16/F64 data (converted to
/// float32), and drops the non-parameter buffers <c>attn.bias</c> / <c>attn.masked_bias</c>.
/// The output head: when the config ties it (the default) and the file also holds <c>lm_head.weight</c>,
/// a bit-equal copy of <c>wte</c> is dropped and the head stays tied; a <em>different</em> matrix is kept and the
/// loaded config becomes untied (<see cref="GptConfig.TiedHead"/> = false), because the file then carries a head
/// of its own and dropping it would change the model's outputs. An untied config keeps <c>lm_head.weight</c> as
/// it is and requires it. Names, shapes and missing or extra tensors are checked by <see cref="GptWeights"/>.
/// </para>
/// </summary>
public static class HfCheckpoint
{
    /// <summary>The Hugging Face config file of a checkpoint folder.</summary>
    public const string ConfigFile = "config.json";
    /// <summary>The weights of an unsharded checkpoint.</summary>
    public const string WeightsFile = "model.safetensors";
    /// <summary>The index naming the shard of each tensor, for a sharded checkpoint.</summary>
    public const string IndexFile = "model.safetensors.index.json";

    /// <summary>Loads a checkpoint folder; every problem is an <see cref="OnnxGptException"/> naming the file and tensor.</summary>
    public static GptWeights Load(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        if (!Directory.Exists(folder))
        {
            throw new OnnxGptException($"{folder}: checkpoint folder not found.");
        }

        var config = ReadConfig(folder);

        string single = Path.Combine(folder, WeightsFile), index = Path.Combine(folder, IndexFile);
        var files = new List<SafetensorsFile>();
        try
        {
            string source;
            List<(string Name, SafetensorsFile File)> plan;
            if (InputFile.Exists(single))
            {
                source = single;
                var file = SafetensorsFile.Open(single);
                files.Add(file);
                plan = file.Entries.Select(e => (e.Name, file)).ToList();
            }
            else if (InputFile.Exists(index))
            {
                source = index;
                plan = PlanShards(folder, index, files);
            }
            else
            {
                throw new OnnxGptException(
                    $"{folder}: no {WeightsFile} or {IndexFile}. Only safetensors checkpoints load; convert a pytorch_model.bin " +
                    "with transformers' save_pretrained(..., safe_serialization=True).");
            }

            var tensors = ReadCanonical(plan);
            config = ResolveHead(config, tensors);
            return new GptWeights(config, tensors, source);
        }
        finally
        {
            foreach (var file in files)
            {
                file.Dispose();
            }
        }
    }

    /// <summary>
    /// Reads only the checkpoint's <c>config.json</c>, so that a caller can check what an export will need (and
    /// validate its options) before any weight is read.
    /// </summary>
    /// <exception cref="OnnxGptException">The folder or its config is missing, not a regular file, or invalid.</exception>
    public static GptConfig ReadConfig(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        if (!Directory.Exists(folder))
        {
            throw new OnnxGptException($"{folder}: checkpoint folder not found.");
        }

        string configPath = Path.Combine(folder, ConfigFile);
        if (!InputFile.Exists(configPath))
        {
            throw new OnnxGptException($"{configPath}: not found; a Hugging Face checkpoint folder needs its {ConfigFile}.");
        }

        return GptConfig.FromFile(configPath);
    }

    /// <summary>
    /// Writes <c>config.json</c> and <c>model.safetensors</c> under the canonical (prefixed) names, with
    /// <c>lm_head.weight</c> only when the head is untied, and <c>__metadata__</c> <c>format: pt</c> (which
    /// <c>transformers</c> requires) unless <paramref name="metadata"/> gives a format. Creates the folder if needed.
    /// </summary>
    public static void Save(GptWeights weights, string folder, IReadOnlyDictionary<string, string>? metadata = null,
        SafetensorsDType dtype = SafetensorsDType.F32)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        Directory.CreateDirectory(folder);
        var meta = new Dictionary<string, string>(StringComparer.Ordinal) { ["format"] = "pt" };
        if (metadata is not null)
        {
            foreach (var (key, value) in metadata)
            {
                meta[key] = value;
            }
        }

        if (weights.Config.Family == ModelFamily.Llama)
        {
            weights = LlamaRotaryLayout.ToHalves(weights);                     // Hugging Face's Llama rotates halves
        }

        SafetensorsWriter.Write(
            Path.Combine(folder, WeightsFile),
            weights.Names.Select(n => KeyValuePair.Create(n, weights[n])),
            meta,
            dtype);
        File.WriteAllText(Path.Combine(folder, ConfigFile), weights.Config.ToJson());
    }

    /// <summary>The largest index file read (GPT-2 XL's is about 30 KiB).</summary>
    private const long MaxIndexBytes = 64L << 20;

    /// <summary>The most shard files one index may name (each stays open while the checkpoint loads).</summary>
    public const int MaxShards = 4096;

    private static List<(string Name, SafetensorsFile File)> PlanShards(string folder, string index, List<SafetensorsFile> opened)
    {
        using var document = JsonInput.ReadFile(index, "sharded checkpoint index", MaxIndexBytes);
        var root = JsonInput.Root(document, index);
        if (root.Kind != JsonValueKind.Object || root.Get("weight_map") is not { Kind: JsonValueKind.Object } map)
        {
            throw new OnnxGptException($"{index}: expected an object with a 'weight_map' object of tensor name -> shard file.");
        }

        var shards = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        var plan = new List<(string, SafetensorsFile)>();
        foreach (var (tensorName, value) in map.Properties())
        {
            if (value.Kind != JsonValueKind.String)
            {
                throw value.Error($"the name of the shard file that holds tensor '{tensorName}'");
            }

            string shardName = value.GetString();
            if (!shards.TryGetValue(shardName, out var shard))
            {
                if (shards.Count >= MaxShards)
                {
                    throw new OnnxGptException($"{index}: names more than {MaxShards} shard files; expected fewer.");
                }

                string shardPath = FolderPaths.ResolveInside(folder, shardName, $"{index}: {value.Path}");
                shard = SafetensorsFile.Open(shardPath);
                opened.Add(shard);
                shards[shardName] = shard;
            }

            if (!shard.Contains(tensorName))
            {
                throw new OnnxGptException(
                    $"{index}: tensor '{tensorName}' is mapped to {shard.Path}, which does not hold it.");
            }

            plan.Add((tensorName, shard));
        }

        var listed = plan.Select(p => p.Item1).ToHashSet(StringComparer.Ordinal);
        foreach (var shard in shards.Values)
        {
            foreach (var entry in shard.Entries)
            {
                if (!listed.Contains(entry.Name) && !HfTensorNames.IsBuffer(HfTensorNames.Canonical(entry.Name)))
                {
                    throw new OnnxGptException(
                        $"{shard.Path}: tensor '{entry.Name}' is not listed in {index}; the index and its shards disagree.");
                }
            }
        }

        return plan;
    }

    /// <summary>Maps names to canonical ones, drops buffers, checks dtypes before reading, then reads.</summary>
    private static Dictionary<string, Tensor> ReadCanonical(List<(string Name, SafetensorsFile File)> plan)
    {
        var chosen = new Dictionary<string, (string Name, SafetensorsFile File)>(StringComparer.Ordinal);
        foreach (var (name, file) in plan)
        {
            string canonical = HfTensorNames.Canonical(name);
            if (HfTensorNames.IsBuffer(canonical))
            {
                continue;
            }

            if (chosen.TryGetValue(canonical, out var earlier))
            {
                throw new OnnxGptException(
                    $"{file.Path}: tensor '{name}' and tensor '{earlier.Name}' in {earlier.File.Path} are both '{canonical}'; keep one.");
            }

            var entry = file.GetEntry(name);
            if (!entry.DType.ConvertsToFloat32())
            {
                throw new OnnxGptException(
                    $"{file.Path}: tensor '{name}' has dtype {entry.DType}; expected a floating-point dtype ({SafetensorsDTypes.FloatSpellings}).");
            }

            chosen[canonical] = (name, file);
        }

        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (canonical, (name, file)) in chosen)
        {
            var tensor = file.ReadTensor(name);
            int bad = FirstNonFinite(tensor.Data);
            if (bad >= 0)
            {
                // NaN or infinite weights export silently and then make every logit NaN.
                throw new OnnxGptException(
                    $"{file.Path}: tensor '{name}' holds {tensor.Data[bad]} at index {bad}; expected finite weights (is the checkpoint corrupt?).");
            }

            tensors[canonical] = tensor;
        }

        return tensors;
    }

    private static int FirstNonFinite(float[] values)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                return i;
            }
        }

        return -1;
    }

    private static GptConfig ResolveHead(GptConfig config, Dictionary<string, Tensor> tensors)
    {
        if (!config.TiedHead || !tensors.TryGetValue(TensorNames.LmHead, out var head))
        {
            return config;
        }

        if (tensors.TryGetValue(GptWeights.EmbeddingName(config), out var wte) && BitEqual(head, wte))
        {
            tensors.Remove(TensorNames.LmHead);
            return config;
        }

        return config with { TiedHead = false };
    }

    private static bool BitEqual(Tensor a, Tensor b) =>
        a.ShapeEquals(b.Shape) && MemoryMarshal.AsBytes(a.Data.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(b.Data.AsSpan()));
}

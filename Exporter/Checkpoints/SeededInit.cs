using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Exporter.Checkpoints;

/// <summary>
/// Fresh weights for a config, initialised as GPT-2 does: every weight matrix and both embeddings from
/// normal(0, σ) with σ = <c>initializer_range</c> (0.02); the residual projections <c>attn.c_proj.weight</c> and
/// <c>mlp.c_proj.weight</c> from normal(0, σ / √(2 · n_layer)); layer-norm weights 1; every bias 0.
/// <para>
/// Reproducible bit for bit: each tensor is cut into fixed chunks of <see cref="ChunkElements"/> values and chunk k
/// of tensor <c>name</c> draws from <c>DeterministicRandom.ForStream(seed, name, k)</c>, so the result does not
/// depend on thread count or scheduling, and the chunks fill in parallel.
/// </para>
/// </summary>
public static class SeededInit
{
    /// <summary>GPT-2's <c>initializer_range</c>.</summary>
    public const double DefaultStd = 0.02;

    /// <summary>Values per random stream. Part of the algorithm: changing it changes every seeded model.</summary>
    public const int ChunkElements = 1 << 20;

    /// <summary>Weights for <paramref name="config"/> drawn as GPT-2 initialises them, the same for the same <paramref name="seed"/> on every machine; <paramref name="initializerRange"/> is the standard deviation of the normal draws.</summary>
    public static GptWeights Create(GptConfig config, ulong seed, double initializerRange = DefaultStd) =>
        Create(config, seed, initializerRange, maxDegreeOfParallelism: -1);

    internal static GptWeights Create(GptConfig config, ulong seed, double initializerRange, int maxDegreeOfParallelism)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (!(initializerRange >= 0) || double.IsInfinity(initializerRange))
        {
            throw new ArgumentOutOfRangeException(nameof(initializerRange), initializerRange, "must be a finite number >= 0.");
        }

        config.Validate();
        // Every value is allocated here: check the count against the memory there is before allocating any.
        long bytes = config.ParameterCount * sizeof(float);
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (available > 0 && bytes > available)
        {
            throw new OnnxGptException(
                $"config: {config.ParameterCount:N0} parameters need {bytes / (double)(1L << 30):F1} GiB as float32, more than the " +
                $"{available / (double)(1L << 30):F1} GiB this process may use; check n_layer, n_embd and vocab_size.");
        }

        double residualStd = initializerRange / Math.Sqrt(2.0 * config.Layers);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var work = new List<(string Name, float[] Data, int Start, int Count, double Std)>();
        foreach (var (name, shape) in GptWeights.ExpectedShapes(config))
        {
            var tensor = new Tensor(shape);
            tensors[name] = tensor;
            if (shape.Length == 1)
            {
                if (name.EndsWith(".weight", StringComparison.Ordinal))
                {
                    Array.Fill(tensor.Data, 1f); // layer-norm gain; biases stay 0
                }

                continue;
            }

            bool residual = name.EndsWith(".attn.c_proj.weight", StringComparison.Ordinal)
                || name.EndsWith(".mlp.c_proj.weight", StringComparison.Ordinal);
            double std = residual ? residualStd : initializerRange;
            for (int start = 0; start < tensor.Data.Length; start += ChunkElements)
            {
                work.Add((name, tensor.Data, start, Math.Min(ChunkElements, tensor.Data.Length - start), std));
            }
        }

        Parallel.ForEach(work, new ParallelOptions { MaxDegreeOfParallelism = maxDegreeOfParallelism }, item =>
        {
            var random = DeterministicRandom.ForStream(seed, item.Name, (ulong)(item.Start / ChunkElements));
            random.FillNormal(item.Data.AsSpan(item.Start, item.Count), 0.0, item.Std);
        });

        return new GptWeights(config, tensors, $"seeded init (seed {seed})");
    }
}

using Microsoft.ML.OnnxRuntime;
using OnnxGpt.Contracts;

namespace OnnxGpt.Tests.Support;

/// <summary>
/// Runs a fused-graph export with the KV cache in place: one buffer per layer of shape (B, H, capacity, D) bound as
/// both past input and present output, each row's tokens from cache position 0 (padding on the right).
/// </summary>
internal sealed class FusedOrtGpt : IDisposable
{
    private readonly InferenceSession _session;
    private readonly int _batch;
    private readonly int _capacity;
    private readonly float[][] _cache;

    public FusedOrtGpt(string modelPath, int batch, int capacity, GraphOptimizationLevel level = GraphOptimizationLevel.ORT_ENABLE_ALL)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = level, IntraOpNumThreads = 1 };
        _session = new InferenceSession(modelPath, options);
        Layers = _session.InputMetadata.Keys.Count(k => k.EndsWith(".key", StringComparison.Ordinal));
        var meta = _session.InputMetadata["past_key_values.0.key"];
        Heads = meta.Dimensions[1];
        HeadSize = meta.Dimensions[3];
        _batch = batch;
        _capacity = capacity;
        _cache = Enumerable.Range(0, 2 * Layers).Select(_ => new float[batch * Heads * capacity * HeadSize]).ToArray();
    }

    public int Layers { get; }

    public int Heads { get; }

    public int HeadSize { get; }

    /// <summary>Runs new tokens (B, T) given the mask (B, S) and positions (B, T); returns logits (B, T', V) flattened.</summary>
    public float[] Run(long[][] ids, long[][] mask, long[][] positions, long logitsToKeep = 0)
    {
        int t = ids[0].Length, total = mask[0].Length;
        var values = new List<OrtValue>();
        try
        {
            using var binding = _session.CreateIoBinding();
            OrtValue Add(OrtValue v)
            {
                values.Add(v);
                return v;
            }

            binding.BindInput("input_ids", Add(OrtValue.CreateTensorValueFromMemory(ids.SelectMany(r => r).ToArray(), [_batch, t])));
            binding.BindInput("attention_mask", Add(OrtValue.CreateTensorValueFromMemory(mask.SelectMany(r => r).ToArray(), [_batch, total])));
            if (_session.InputMetadata.ContainsKey("position_ids"))
            {
                binding.BindInput("position_ids", Add(OrtValue.CreateTensorValueFromMemory(positions.SelectMany(r => r).ToArray(), [_batch, t])));
            }

            binding.BindInput("num_logits_to_keep", Add(OrtValue.CreateTensorValueFromMemory(new[] { logitsToKeep }, [])));
            long[] shape = [_batch, Heads, _capacity, HeadSize];
            for (int i = 0; i < Layers; i++)
            {
                var key = Add(OrtValue.CreateTensorValueFromMemory(_cache[2 * i], shape));
                var value = Add(OrtValue.CreateTensorValueFromMemory(_cache[2 * i + 1], shape));
                binding.BindInput($"past_key_values.{i}.key", key);
                binding.BindInput($"past_key_values.{i}.value", value);
                binding.BindOutput($"present.{i}.key", key);
                binding.BindOutput($"present.{i}.value", value);
            }

            binding.BindOutputToDevice("logits", OrtMemoryInfo.DefaultInstance);
            using var run = new RunOptions();
            _session.RunWithBinding(run, binding);
            using var outputs = binding.GetOutputValues();
            return outputs[^1].GetTensorDataAsSpan<float>().ToArray();   // logits were bound last
        }
        finally
        {
            foreach (var v in values)
            {
                v.Dispose();
            }
        }
    }

    public void Dispose() => _session.Dispose();
}

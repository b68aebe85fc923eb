using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace OnnxGpt.Tests.Support;

/// <summary>Runs an exported model directly through ONNX Runtime with explicit inputs: the tests' view of the graph.</summary>
internal sealed class OrtGpt : IDisposable
{
    private readonly InferenceSession _session;

    public OrtGpt(string modelPath, GraphOptimizationLevel level = GraphOptimizationLevel.ORT_ENABLE_ALL)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = level, IntraOpNumThreads = 1 };
        _session = new InferenceSession(modelPath, options);
        Layers = _session.InputMetadata.Keys.Count(k => k.EndsWith(".key", StringComparison.Ordinal));
        var pastMeta = _session.InputMetadata["past_key_values.0.key"];
        Heads = pastMeta.Dimensions[1];
        HeadSize = pastMeta.Dimensions[3];
    }

    public int Layers { get; }

    public int Heads { get; }

    public int HeadSize { get; }

    public sealed record Step(float[] Logits, int Vocab, (float[] Key, float[] Value)[] Present, int Total);

    /// <summary>One call: ids and positions (B, T), mask (B, P+T), past per layer (B, H, P, D) flattened.</summary>
    public Step Run(long[][] ids, long[][] mask, long[][] positions, (float[] Key, float[] Value)[]? past, int pastLength)
    {
        int b = ids.Length, t = ids[0].Length, total = mask[0].Length;
        var inputs = new Dictionary<string, OrtValue>();
        try
        {
            inputs["input_ids"] = OrtValue.CreateTensorValueFromMemory(ids.SelectMany(r => r).ToArray(), [b, t]);
            inputs["attention_mask"] = OrtValue.CreateTensorValueFromMemory(mask.SelectMany(r => r).ToArray(), [b, total]);
            inputs["position_ids"] = OrtValue.CreateTensorValueFromMemory(positions.SelectMany(r => r).ToArray(), [b, t]);
            for (int i = 0; i < Layers; i++)
            {
                long[] shape = [b, Heads, pastLength, HeadSize];
                inputs[$"past_key_values.{i}.key"] = Past(past?[i].Key, shape);
                inputs[$"past_key_values.{i}.value"] = Past(past?[i].Value, shape);
            }

            var names = new List<string> { "logits" };
            for (int i = 0; i < Layers; i++)
            {
                names.Add($"present.{i}.key");
                names.Add($"present.{i}.value");
            }

            using var run = new RunOptions();
            using var outputs = _session.Run(run, inputs.Keys.ToArray(), inputs.Values.ToArray(), names);
            var logits = outputs[0].GetTensorDataAsSpan<float>().ToArray();
            int vocab = (int)outputs[0].GetTensorTypeAndShape().Shape[2];
            var present = new (float[], float[])[Layers];
            for (int i = 0; i < Layers; i++)
            {
                present[i] = (outputs[1 + 2 * i].GetTensorDataAsSpan<float>().ToArray(), outputs[2 + 2 * i].GetTensorDataAsSpan<float>().ToArray());
            }

            return new Step(logits, vocab, present, total);
        }
        finally
        {
            foreach (var v in inputs.Values)
            {
                v.Dispose();
            }
        }
    }

    private static OrtValue Past(float[]? data, long[] shape)
    {
        if (shape[2] == 0)
        {
            return OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, shape);
        }

        return OrtValue.CreateTensorValueFromMemory(data!, shape);
    }

    public void Dispose() => _session.Dispose();
}

using System.Text.Json;
using System.Text.Json.Serialization;

namespace OnnxGpt.Training;

/// <summary>Hyper-parameters of a training run. Defaults suit a small character-level model on a 2-core CPU.</summary>
public sealed record TrainingOptions
{
    /// <summary>Total optimizer steps (the cosine schedule ends here).</summary>
    [JsonPropertyName("steps")]
    public required int Steps { get; init; }

    [JsonPropertyName("batch_size")]
    public int BatchSize { get; init; } = 16;

    /// <summary>Tokens per training window; null means the model's context length.</summary>
    [JsonPropertyName("context")]
    public int? Context { get; init; }

    [JsonPropertyName("learning_rate")]
    public double LearningRate { get; init; } = 2e-3;

    /// <summary>The rate the cosine decay ends at; null means a tenth of <see cref="LearningRate"/>.</summary>
    [JsonPropertyName("min_learning_rate")]
    public double? MinLearningRate { get; init; }

    [JsonPropertyName("warmup_steps")]
    public int WarmupSteps { get; init; } = 100;

    [JsonPropertyName("weight_decay")]
    public double WeightDecay { get; init; } = 0.1;

    [JsonPropertyName("beta1")]
    public double Beta1 { get; init; } = 0.9;

    /// <summary>0.99 rather than GPT-2's 0.95: with few tokens per step the second moment needs a longer memory (nanoGPT's char setting).</summary>
    [JsonPropertyName("beta2")]
    public double Beta2 { get; init; } = 0.99;

    /// <summary>Clip the gradients' global L2 norm to this (0 turns clipping off).</summary>
    [JsonPropertyName("grad_clip")]
    public double GradientClip { get; init; } = 1.0;

    [JsonPropertyName("seed")]
    public ulong Seed { get; init; } = 1337;

    /// <summary>Evaluate (and checkpoint, when writing to a folder) every this many steps, and at the end.</summary>
    [JsonPropertyName("eval_every")]
    public int EvalEvery { get; init; } = 250;

    /// <summary>Evaluation windows per split (rounded down to whole batches); fewer when the split is short.</summary>
    [JsonPropertyName("eval_windows")]
    public int EvalWindows { get; init; } = 128;

    /// <summary>Report progress every this many steps.</summary>
    [JsonPropertyName("log_every")]
    public int LogEvery { get; init; } = 10;

    /// <summary>The share of the text (from the start) used for training; the rest validates.</summary>
    [JsonPropertyName("train_fraction")]
    public double TrainFraction { get; init; } = 0.9;

    /// <summary>Checks every field; throws <see cref="OnnxGptException"/> naming the first bad one.</summary>
    public TrainingOptions Validate(int modelContext)
    {
        void Fail(string field, object value, string expected) =>
            throw new OnnxGptException($"training options: {field} is {value}; expected {expected}.");

        if (Steps <= 0) Fail("steps", Steps, "a positive number");
        if (BatchSize <= 0) Fail("batch_size", BatchSize, "a positive number");
        if (Context is { } t && (t <= 0 || t > modelContext)) Fail("context", t, $"1..{modelContext} (the model's context length)");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) Fail("learning_rate", LearningRate, "a positive number");
        if (MinLearningRate is { } m && !(m >= 0 && m <= LearningRate)) Fail("min_learning_rate", m, $"0..{LearningRate}");
        if (WarmupSteps < 0) Fail("warmup_steps", WarmupSteps, "0 or more");
        if (!(WeightDecay >= 0)) Fail("weight_decay", WeightDecay, "0 or more");
        if (!(Beta1 >= 0 && Beta1 < 1)) Fail("beta1", Beta1, "[0, 1)");
        if (!(Beta2 >= 0 && Beta2 < 1)) Fail("beta2", Beta2, "[0, 1)");
        if (!(GradientClip >= 0)) Fail("grad_clip", GradientClip, "0 (off) or more");
        if (EvalEvery <= 0) Fail("eval_every", EvalEvery, "a positive number");
        if (EvalWindows <= 0) Fail("eval_windows", EvalWindows, "a positive number");
        if (LogEvery <= 0) Fail("log_every", LogEvery, "a positive number");
        if (!(TrainFraction > 0 && TrainFraction < 1)) Fail("train_fraction", TrainFraction, "(0, 1)");
        return this;
    }

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public static TrainingOptions FromJson(string json, string source = "trainer_state.json")
    {
        try
        {
            return JsonSerializer.Deserialize<TrainingOptions>(json, JsonOptions)
                ?? throw new OnnxGptException($"{source}: expected training options, found null.");
        }
        catch (JsonException e)
        {
            throw new OnnxGptException($"{source}: not valid training options ({e.Message}).", e);
        }
    }

    internal static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = true };
}

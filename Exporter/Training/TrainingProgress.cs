namespace OnnxGpt.Training;

/// <summary>A progress report: after a logged step, or after an evaluation (then the losses on fixed windows are set).</summary>
public sealed record TrainingProgress
{
    /// <summary>Steps done so far (1-based after the first step).</summary>
    public required int Step { get; init; }

    public required int TotalSteps { get; init; }

    /// <summary>Mean training-batch loss since the previous report (nats per token).</summary>
    public required double TrainLoss { get; init; }

    public required double LearningRate { get; init; }

    /// <summary>The gradients' global norm at the last step, before clipping.</summary>
    public required double GradientNorm { get; init; }

    /// <summary>Training throughput over this session (evaluation time excluded).</summary>
    public required double TokensPerSecond { get; init; }

    public required TimeSpan Elapsed { get; init; }

    /// <summary>Estimated time to the last step at the current pace.</summary>
    public required TimeSpan Remaining { get; init; }

    /// <summary>Mean loss on the fixed training-split windows, at evaluations.</summary>
    public double? EvalTrainLoss { get; init; }

    /// <summary>Mean loss on the fixed validation windows, at evaluations.</summary>
    public double? ValidationLoss { get; init; }

    public override string ToString()
    {
        var text = $"step {Step,6}/{TotalSteps}  loss {TrainLoss:F4}  lr {LearningRate:E2}  norm {GradientNorm:F3}  " +
            $"{TokensPerSecond,7:F0} tok/s  elapsed {Elapsed:hh\\:mm\\:ss}  left {Remaining:hh\\:mm\\:ss}";
        if (ValidationLoss is { } v)
        {
            text += $"  | eval train {EvalTrainLoss:F4} val {v:F4}";
        }

        return text;
    }
}

namespace OnnxGpt.Training;

/// <summary>Linear warmup to <see cref="Peak"/>, then cosine decay to <see cref="Minimum"/> at <see cref="TotalSteps"/> (nanoGPT's schedule).</summary>
public sealed record LearningRateSchedule(double Peak, double Minimum, int WarmupSteps, int TotalSteps)
{
    /// <summary>The rate for step <paramref name="step"/> (0-based).</summary>
    public double At(int step)
    {
        if (step < WarmupSteps)
        {
            return Peak * (step + 1) / WarmupSteps;
        }

        if (step >= TotalSteps)
        {
            return Minimum;
        }

        double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
        return Minimum + 0.5 * (1 + Math.Cos(Math.PI * progress)) * (Peak - Minimum);
    }
}

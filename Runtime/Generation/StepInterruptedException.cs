namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// A run of a <see cref="DecoderStep"/> stopped by <see cref="DecoderStep.Interrupt"/> before it finished: no
/// sequence was moved on and no logits were handed out, so the same feed can simply run again.
/// </summary>
internal sealed class StepInterruptedException : Exception
{
    public StepInterruptedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

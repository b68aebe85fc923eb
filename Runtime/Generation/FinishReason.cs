namespace OnnxGpt.Runtime.Generation;

/// <summary>Why a sequence stopped generating.</summary>
public enum FinishReason
{
    /// <summary>Still generating.</summary>
    None,

    /// <summary>It produced the model's end-of-sequence token.</summary>
    EndOfSequence,

    /// <summary>It produced one of <c>GenerationOptions.StopTokenIds</c>.</summary>
    StopToken,

    /// <summary>Its text reached one of <c>GenerationOptions.StopStrings</c>.</summary>
    StopString,

    /// <summary>It produced <c>GenerationOptions.MaxNewTokens</c> tokens.</summary>
    MaxNewTokens,

    /// <summary>The sequence filled the model's context.</summary>
    ContextFull,

    /// <summary>The text completed <c>GenerationOptions.Constraint</c>, and no token could follow it.</summary>
    ConstraintComplete,
}

namespace OnnxGpt;

/// <summary>Whose fault an <see cref="OnnxGptException"/> is, so a host can answer it rightly (a server: 400 or 500).</summary>
public enum OnnxGptErrorKind
{
    /// <summary>Bad input: a file, a folder, an option, a prompt. The caller can fix it.</summary>
    Input,

    /// <summary>The model produced output that cannot be used (NaN logits, every logit masked): not the request's fault.</summary>
    ModelOutput,
}

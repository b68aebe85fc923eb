namespace OnnxGpt;

/// <summary>
/// The one error type for bad models, files and configurations. The message names the file, tensor or field,
/// what was expected, what was found, and what to do about it.
/// </summary>
public sealed class OnnxGptException : Exception
{
    /// <summary>An error whose message names the file, field or tensor, what was expected and what was found.</summary>
    public OnnxGptException(string message) : base(message) { }

    /// <summary>An error with its cause.</summary>
    public OnnxGptException(string message, Exception inner) : base(message, inner) { }

    /// <summary>An error of the given kind (for <see cref="OnnxGptErrorKind.ModelOutput"/>: the model's output, not the input, is at fault).</summary>
    public OnnxGptException(string message, OnnxGptErrorKind kind) : base(message) => Kind = kind;

    /// <summary>Whose fault it is; <see cref="OnnxGptErrorKind.Input"/> unless the model's output is.</summary>
    public OnnxGptErrorKind Kind { get; }
}

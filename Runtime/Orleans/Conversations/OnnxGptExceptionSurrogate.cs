namespace OnnxGpt.Orleans.Conversations;

/// <summary>
/// <see cref="OnnxGptException"/> on the wire from a silo to its caller (the library's type carries no Orleans
/// attributes): a turn the silo refuses (text the tokenizer cannot encode, a prompt over the context) reaches the
/// caller as the library's own error, with its message and kind; the stack trace stays on the silo.
/// </summary>
[GenerateSerializer, Immutable, Alias("onnxgpt.OnnxGptException")]
internal struct OnnxGptExceptionSurrogate
{
    [Id(0)] public string Message;
    [Id(1)] public OnnxGptErrorKind Kind;
}

/// <summary>Converts <see cref="OnnxGptException"/> to and from <see cref="OnnxGptExceptionSurrogate"/>.</summary>
[RegisterConverter]
internal sealed class OnnxGptExceptionConverter : IConverter<OnnxGptException, OnnxGptExceptionSurrogate>
{
    public OnnxGptException ConvertFromSurrogate(in OnnxGptExceptionSurrogate surrogate) => new(surrogate.Message, surrogate.Kind);

    public OnnxGptExceptionSurrogate ConvertToSurrogate(in OnnxGptException value) => new() { Message = value.Message, Kind = value.Kind };
}

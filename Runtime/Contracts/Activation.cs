namespace OnnxGpt.Contracts;

/// <summary>The feed-forward activation. Names follow Hugging Face's <c>activation_function</c> values.</summary>
public enum Activation
{
    /// <summary><c>gelu_new</c>: the tanh approximation GPT-2 uses.</summary>
    GeluNew,

    /// <summary><c>gelu</c>: the exact erf form.</summary>
    Gelu,

    /// <summary><c>relu</c>.</summary>
    Relu,

    /// <summary><c>silu</c> (swish): x · sigmoid(x), the gate of Llama's SwiGLU.</summary>
    Silu,
}

/// <summary>Maps <see cref="Activation"/> to and from the Hugging Face config spelling.</summary>
public static class ActivationNames
{
    /// <summary>The name Hugging Face's <c>config.json</c> uses for <paramref name="activation"/> (<c>activation_function</c>).</summary>
    public static string ToConfigName(this Activation activation) => activation switch
    {
        Activation.GeluNew => "gelu_new",
        Activation.Gelu => "gelu",
        Activation.Relu => "relu",
        Activation.Silu => "silu",
        _ => throw new ArgumentOutOfRangeException(nameof(activation), activation, "unknown activation"),
    };

    /// <summary>Parses a config spelling; <c>gelu_pytorch_tanh</c> and <c>gelu_fast</c> are the same tanh form.</summary>
    public static Activation Parse(string name, string source = "config") => name switch
    {
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" or "gelu_tanh" => Activation.GeluNew,
        "gelu" => Activation.Gelu,
        "relu" => Activation.Relu,
        "silu" => Activation.Silu,
        _ => throw new OnnxGptException(
            $"{source}: activation_function '{name}' is not supported; expected one of gelu_new, gelu, relu, silu."),
    };
}

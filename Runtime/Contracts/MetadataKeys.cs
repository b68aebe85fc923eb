namespace OnnxGpt.Contracts;

/// <summary>
/// Keys of the ONNX <c>metadata_props</c> that make an exported model self-describing. Values are JSON unless noted.
/// </summary>
public static class MetadataKeys
{
    /// <summary>Format version of this metadata (plain integer text).</summary>
    public const string FormatVersion = "onnxgpt.format_version";

    /// <summary><see cref="GptConfig"/> as Hugging Face GPT-2 <c>config.json</c> fields.</summary>
    public const string Config = "onnxgpt.config";

    /// <summary><see cref="TokenizerSpec"/>.</summary>
    public const string Tokenizer = "onnxgpt.tokenizer";

    /// <summary><see cref="GenerationDefaults"/>.</summary>
    public const string Generation = "onnxgpt.generation";

    /// <summary><see cref="ChatTemplateSpec"/>: how a chat host turns messages into a prompt. Absent: the host's default.</summary>
    public const string ChatTemplate = "onnxgpt.chat_template";

    /// <summary>I/O convention of the graph (plain text): see <see cref="IoConventions"/>.</summary>
    public const string IoConvention = "onnxgpt.io_convention";

    /// <summary>Graph flavour (plain text): <c>portable</c> or <c>fused</c>.</summary>
    public const string GraphFlavor = "onnxgpt.graph";

    /// <summary>Floating-point type of weights, activations and KV cache (plain text): <c>fp32</c> or <c>fp16</c>.</summary>
    public const string Precision = "onnxgpt.dtype";

    /// <summary>Weight quantization (plain text), absent for float weights: e.g. <c>int4, block 32</c>.</summary>
    public const string Quantization = "onnxgpt.quantization";

    /// <summary>Begin/end-of-sequence ids (plain integer text), also inside the config, for tools that read only these.</summary>
    public const string BosTokenId = "bos_token_id";

    /// <summary>End-of-sequence id (plain integer text), also inside the config.</summary>
    public const string EosTokenId = "eos_token_id";
}

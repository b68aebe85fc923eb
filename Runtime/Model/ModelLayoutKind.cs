namespace OnnxGpt.Runtime.Model;

/// <summary>The convention a model folder follows: which files it keeps where, and which describe the model.</summary>
public enum ModelLayoutKind
{
    /// <summary>OnnxGpt's own export: <c>model.onnx</c> whose metadata describes it (with <c>config.json</c> and <c>genai_config.json</c> beside it).</summary>
    OnnxGpt,

    /// <summary>An ONNX Runtime GenAI folder: <c>genai_config.json</c> names the decoder file and may name its inputs and outputs.</summary>
    GenAi,

    /// <summary>
    /// A Hugging Face Optimum export: <c>model.onnx</c>, <c>decoder_model_merged.onnx</c> (with <c>use_cache_branch</c>),
    /// or <c>decoder_model.onnx</c> + <c>decoder_with_past_model.onnx</c>, with <c>config.json</c> beside them.
    /// </summary>
    Optimum,

    /// <summary>
    /// transformers.js: Optimum's files in an <c>onnx/</c> subfolder, named by dtype (<c>model.onnx</c>,
    /// <c>model_quantized.onnx</c>, <c>model_fp16.onnx</c>, ..., <c>decoder_model_merged_quantized.onnx</c>), with
    /// <c>config.json</c> and the tokenizer files above it.
    /// </summary>
    TransformersJs,

    /// <summary>The ONNX Model Zoo's GPT-2 (<c>gpt2-lm-head-10.onnx</c>): one graph from <c>input1</c> to <c>output1</c> and no cache inputs.</summary>
    ModelZoo,

    /// <summary>A <c>.onnx</c> file in no convention its folder shows.</summary>
    File,
}

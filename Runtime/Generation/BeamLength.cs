namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// What the length in beam search's <c>length ^ length_penalty</c> counts: the two conventions Hugging Face
/// transformers has had, which rank hypotheses differently whenever the length penalty is not 0.
/// </summary>
public enum BeamLength
{
    /// <summary>
    /// The whole sequence, prompt included: a finished hypothesis counts the prompt and its tokens before the end
    /// token; the stopping rules judge the current length (or the maximum length) with the prompt. Transformers up to
    /// 4.35, ONNX Runtime's BeamSearch operator, ONNX Runtime GenAI and vLLM (the default).
    /// </summary>
    WithPrompt,

    /// <summary>
    /// The generated tokens only: a finished hypothesis counts its tokens with the end token; the stopping rules judge
    /// the length after this step's token (or the most new tokens) without the prompt. Transformers since 4.36/4.37
    /// (its fix for decoder-only models, which the earlier convention biased towards short answers after a long prompt).
    /// </summary>
    Generated,
}

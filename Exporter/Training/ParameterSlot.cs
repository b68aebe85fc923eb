namespace OnnxGpt.Training;

/// <summary>Where one named weight tensor lives inside a model's flat parameter (and gradient) array.</summary>
/// <param name="Name">The Hugging Face GPT-2 tensor name.</param>
/// <param name="Shape">The tensor's shape.</param>
/// <param name="Offset">The first element's index in the flat array.</param>
/// <param name="Length">The number of elements.</param>
public readonly record struct ParameterSlot(string Name, int[] Shape, int Offset, int Length)
{
    /// <summary>nanoGPT's rule: every tensor of rank 2 or more (matrices and embeddings) gets weight decay.</summary>
    public bool DecaysWeight => Shape.Length >= 2;
}

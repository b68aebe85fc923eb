namespace OnnxGpt.Checkpoints;

/// <summary>
/// Element types of the safetensors format. Member names are the format's own spellings
/// (<c>"F32"</c>, <c>"BF16"</c>, <c>"F8_E4M3"</c>, ...), so <c>ToString()</c> gives what the header says.
/// Only the floating-point types F64, F32, F16 and BF16 convert to a float32 <see cref="Model.Tensor"/>;
/// the others are recognised so that a file holding them still opens and its errors can name them.
/// </summary>
public enum SafetensorsDType
{
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U64,
    U32,
    U16,
    U8,
    BOOL,
    F8_E4M3,
    F8_E5M2,
    F8_E8M0,
}

namespace OnnxGpt.Exporter.Checkpoints;

/// <summary>
/// Element types of the safetensors format. Member names are the format's own spellings
/// (<c>"F32"</c>, <c>"BF16"</c>, <c>"F8_E4M3"</c>, ...), so <c>ToString()</c> gives what the header says.
/// Only the floating-point types F64, F32, F16 and BF16 convert to a float32 <see cref="Model.Tensor"/>;
/// the others are recognised so that a file holding them still opens and its errors can name them.
/// </summary>
public enum SafetensorsDType
{
    /// <summary>64-bit float.</summary>
    F64,
    /// <summary>32-bit float.</summary>
    F32,
    /// <summary>16-bit IEEE half-precision float.</summary>
    F16,
    /// <summary>16-bit bfloat16 (the upper half of a 32-bit float).</summary>
    BF16,
    /// <summary>64-bit signed integer.</summary>
    I64,
    /// <summary>32-bit signed integer.</summary>
    I32,
    /// <summary>16-bit signed integer.</summary>
    I16,
    /// <summary>8-bit signed integer.</summary>
    I8,
    /// <summary>64-bit unsigned integer.</summary>
    U64,
    /// <summary>32-bit unsigned integer.</summary>
    U32,
    /// <summary>16-bit unsigned integer.</summary>
    U16,
    /// <summary>8-bit unsigned integer.</summary>
    U8,
    /// <summary>Boolean, one byte each.</summary>
    BOOL,
    /// <summary>8-bit float, 4 exponent and 3 mantissa bits.</summary>
    F8_E4M3,
    /// <summary>8-bit float, 5 exponent and 2 mantissa bits.</summary>
    F8_E5M2,
    /// <summary>8-bit float, exponent only (a power-of-two scale).</summary>
    F8_E8M0,
}

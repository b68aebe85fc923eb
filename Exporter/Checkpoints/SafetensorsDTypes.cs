namespace OnnxGpt.Exporter.Checkpoints;

/// <summary>Spellings and sizes of <see cref="SafetensorsDType"/>.</summary>
internal static class SafetensorsDTypes
{
    /// <summary>The header spelling of a dtype, or null for a spelling this reader does not know.</summary>
    public static SafetensorsDType? Parse(string text) => text switch
    {
        "F64" => SafetensorsDType.F64,
        "F32" => SafetensorsDType.F32,
        "F16" => SafetensorsDType.F16,
        "BF16" => SafetensorsDType.BF16,
        "I64" => SafetensorsDType.I64,
        "I32" => SafetensorsDType.I32,
        "I16" => SafetensorsDType.I16,
        "I8" => SafetensorsDType.I8,
        "U64" => SafetensorsDType.U64,
        "U32" => SafetensorsDType.U32,
        "U16" => SafetensorsDType.U16,
        "U8" => SafetensorsDType.U8,
        "BOOL" => SafetensorsDType.BOOL,
        "F8_E4M3" => SafetensorsDType.F8_E4M3,
        "F8_E5M2" => SafetensorsDType.F8_E5M2,
        "F8_E8M0" => SafetensorsDType.F8_E8M0,
        _ => null,
    };

    /// <summary>Bytes per element.</summary>
    public static int Size(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F64 or SafetensorsDType.I64 or SafetensorsDType.U64 => 8,
        SafetensorsDType.F32 or SafetensorsDType.I32 or SafetensorsDType.U32 => 4,
        SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.I16 or SafetensorsDType.U16 => 2,
        SafetensorsDType.I8 or SafetensorsDType.U8 or SafetensorsDType.BOOL
            or SafetensorsDType.F8_E4M3 or SafetensorsDType.F8_E5M2 or SafetensorsDType.F8_E8M0 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a safetensors dtype"),
    };

    /// <summary>Whether a tensor of this dtype reads into a float32 tensor.</summary>
    public static bool ConvertsToFloat32(this SafetensorsDType dtype) =>
        dtype is SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.F64;

    public const string KnownSpellings = "F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2, F8_E8M0";

    public const string FloatSpellings = "F32, F16, BF16, F64";
}

using System.Buffers.Binary;
using System.Text;

namespace OnnxGpt.Tests.Exporter.Checkpoints;

/// <summary>Helpers for writing hand-made checkpoint files in a temp folder.</summary>
internal static class CheckpointTestFiles
{
    /// <summary>A safetensors file from a header string and data bytes; <paramref name="headerLength"/> overrides the length prefix.</summary>
    public static byte[] Raw(string header, byte[]? data = null, ulong? headerLength = null)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + (data?.Length ?? 0)];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength ?? (ulong)json.Length);
        json.CopyTo(bytes, 8);
        data?.CopyTo(bytes, 8 + json.Length);
        return bytes;
    }

    /// <summary>Little-endian bytes of float32 values.</summary>
    public static byte[] F32(params float[] values)
    {
        var bytes = new byte[4 * values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), values[i]);
        }

        return bytes;
    }
}

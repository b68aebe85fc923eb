using OnnxGpt.Contracts;

namespace OnnxGpt.Exporter.Onnx;

/// <summary>
/// Symmetric block quantization in the layout of ONNX Runtime's <c>MatMulNBits</c>: the weight is stored as N rows
/// (one per output) of K values, each row cut into blocks of <c>blockSize</c>; a block holds <c>blockSize × bits / 8</c>
/// bytes (4-bit: two values per byte, the first in the low nibble) and one float scale. With no zero-point input the
/// operator uses 2^(bits-1), so a stored q means (q − 2^(bits-1)) × scale.
/// </summary>
public static class BlockQuantizer
{
    /// <summary>Quantizes <paramref name="rows"/> (N × K, row-major). Returns packed bytes (N, blocks, blob) and scales (N × blocks).</summary>
    public static (byte[] Packed, float[] Scales) Quantize(ReadOnlySpan<float> rows, int n, int k, int bits, int blockSize)
    {
        if (bits is not (4 or 8))
        {
            throw new ArgumentOutOfRangeException(nameof(bits), bits, "bits must be 4 or 8.");
        }

        if (rows.Length != (long)n * k)
        {
            throw new ArgumentException($"expected {n} × {k} values, found {rows.Length}.", nameof(rows));
        }

        int blocks = (k + blockSize - 1) / blockSize;
        int blob = blockSize * bits / 8;
        var packed = new byte[(long)n * blocks * blob];
        var scales = new float[(long)n * blocks];
        int zero = 1 << (bits - 1), max = (1 << bits) - 1;
        for (int r = 0; r < n; r++)
        {
            for (int b = 0; b < blocks; b++)
            {
                var block = rows.Slice(r * k + b * blockSize, Math.Min(blockSize, k - b * blockSize));
                // The value of largest magnitude maps to -2^(bits-1), so the full signed range is used (llama.cpp's Q4_0).
                float extreme = 0;
                foreach (var v in block)
                {
                    if (Math.Abs(v) > Math.Abs(extreme))
                    {
                        extreme = v;
                    }
                }

                float scale = extreme / -zero;
                float inverse = scale == 0 ? 0 : 1 / scale;
                scales[r * blocks + b] = scale;
                long at = ((long)r * blocks + b) * blob;
                for (int i = 0; i < blockSize; i++)
                {
                    int q = i < block.Length ? Math.Clamp((int)MathF.Round(block[i] * inverse) + zero, 0, max) : zero;
                    if (bits == 8)
                    {
                        packed[at + i] = (byte)q;
                    }
                    else if ((i & 1) == 0)
                    {
                        packed[at + i / 2] = (byte)q;
                    }
                    else
                    {
                        packed[at + i / 2] |= (byte)(q << 4);
                    }
                }
            }
        }

        return (packed, scales);
    }

    /// <summary>The float values a quantized row-major (N × K) weight stands for; tests and quality checks use it.</summary>
    public static float[] Dequantize(byte[] packed, float[] scales, int n, int k, int bits, int blockSize)
    {
        int blocks = (k + blockSize - 1) / blockSize, blob = blockSize * bits / 8, zero = 1 << (bits - 1);
        var result = new float[(long)n * k];
        for (int r = 0; r < n; r++)
        {
            for (int i = 0; i < k; i++)
            {
                int b = i / blockSize, j = i % blockSize;
                long at = ((long)r * blocks + b) * blob;
                int q = bits == 8 ? packed[at + j] : (packed[at + j / 2] >> (4 * (j & 1))) & 0xF;
                result[(long)r * k + i] = (q - zero) * scales[r * blocks + b];
            }
        }

        return result;
    }
}

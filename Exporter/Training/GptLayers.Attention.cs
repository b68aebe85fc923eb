using System.Numerics;
using System.Numerics.Tensors;

namespace OnnxGpt.Training;

public static partial class GptLayers
{
    // ---------------------------------------------------------------- causal multi-head self-attention

    /// <summary>
    /// qkv (B·T, 3C) holds q, k, v side by side, each split into H heads of D = C / H. output (B·T, C) is the
    /// heads' outputs side by side; att (B, H, T, T) keeps the softmaxed scores (zero above the diagonal).
    /// </summary>
    public static void AttentionForward<T>(Memory<T> output, Memory<T> att, ReadOnlyMemory<T> qkv, int batch, int seq, int c, int heads)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(output.Length >= batch * seq * c && att.Length >= batch * heads * seq * seq && qkv.Length >= batch * seq * 3 * c
            && heads > 0 && c % heads == 0, "attention buffers");
        int d = c / heads;
        T scale = T.One / T.Sqrt(T.CreateChecked(d));
        Kernels.For(batch * heads, 1, (long)seq * seq * d, (start, end) =>
        {
            var o = output.Span;
            var a = att.Span;
            var x = qkv.Span;
            for (int bh = start; bh < end; bh++)
            {
                int b = bh / heads, h = bh % heads;
                for (int t = 0; t < seq; t++)
                {
                    var q = x.Slice((b * seq + t) * 3 * c + h * d, d);
                    var row = a.Slice((bh * seq + t) * seq, seq);
                    for (int t2 = 0; t2 <= t; t2++)
                    {
                        row[t2] = TensorPrimitives.Dot(q, x.Slice((b * seq + t2) * 3 * c + c + h * d, d)) * scale;
                    }

                    Softmax<T>(row[..(t + 1)], row[..(t + 1)]);
                    row[(t + 1)..].Clear();

                    var y = o.Slice((b * seq + t) * c + h * d, d);
                    y.Clear();
                    for (int t2 = 0; t2 <= t; t2++)
                    {
                        TensorPrimitives.MultiplyAdd(x.Slice((b * seq + t2) * 3 * c + 2 * c + h * d, d), row[t2], y, y);
                    }
                }
            }
        });
    }

    /// <summary>dqkv += the gradient of <see cref="AttentionForward"/> given doutput (B·T, C).</summary>
    public static void AttentionBackward<T>(Memory<T> dqkv, ReadOnlyMemory<T> doutput, ReadOnlyMemory<T> qkv, ReadOnlyMemory<T> att,
        int batch, int seq, int c, int heads)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(dqkv.Length >= batch * seq * 3 * c && doutput.Length >= batch * seq * c && att.Length >= batch * heads * seq * seq
            && qkv.Length >= batch * seq * 3 * c && heads > 0 && c % heads == 0, "attention gradient buffers");
        int d = c / heads;
        T scale = T.One / T.Sqrt(T.CreateChecked(d));
        Kernels.For(batch * heads, 1, 2L * seq * seq * d, (start, end) =>
        {
            var dx = dqkv.Span;
            var dy = doutput.Span;
            var x = qkv.Span;
            var a = att.Span;
            var datt = new T[seq];
            for (int bh = start; bh < end; bh++)
            {
                int b = bh / heads, h = bh % heads;
                for (int t = 0; t < seq; t++)
                {
                    var row = a.Slice((bh * seq + t) * seq, t + 1);
                    var dyt = dy.Slice((b * seq + t) * c + h * d, d);
                    var q = x.Slice((b * seq + t) * 3 * c + h * d, d);
                    var dq = dx.Slice((b * seq + t) * 3 * c + h * d, d);

                    // y_t = Σ att[t2] v_t2  →  datt[t2] = dy_t · v_t2,  dv_t2 += att[t2] dy_t
                    for (int t2 = 0; t2 <= t; t2++)
                    {
                        int v2 = (b * seq + t2) * 3 * c + 2 * c + h * d;
                        datt[t2] = TensorPrimitives.Dot(dyt, x.Slice(v2, d));
                        var dv = dx.Slice(v2, d);
                        TensorPrimitives.MultiplyAdd(dyt, row[t2], dv, dv);
                    }

                    // softmax: dpre[t2] = att[t2] (datt[t2] − Σ att·datt); pre = q·k · scale
                    T dot = TensorPrimitives.Dot(row, (ReadOnlySpan<T>)datt.AsSpan(0, t + 1));
                    for (int t2 = 0; t2 <= t; t2++)
                    {
                        T dpre = row[t2] * (datt[t2] - dot) * scale;
                        int k2 = (b * seq + t2) * 3 * c + c + h * d;
                        TensorPrimitives.MultiplyAdd(x.Slice(k2, d), dpre, dq, dq);
                        var dk = dx.Slice(k2, d);
                        TensorPrimitives.MultiplyAdd(q, dpre, dk, dk);
                    }
                }
            }
        });
    }
}

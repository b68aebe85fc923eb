using System.Numerics;
using System.Runtime.CompilerServices;
using System.Numerics.Tensors;

namespace OnnxGpt.Training;

public static partial class GptLayers
{
    // ---------------------------------------------------------------- causal multi-head self-attention

    /// <summary>
    /// qkv (B·T, 3C) holds q, k, v side by side, each split into H heads of D = C / H. output (B·T, C) is the
    /// heads' outputs side by side; att (B, H, T, T) keeps the softmaxed scores (zero above the diagonal).
    /// Per (batch, head): S = Q Kᵀ / √D (causal), att = softmax(S) row by row, Y = att V.
    /// </summary>
    public static void AttentionForward<T>(Memory<T> output, Memory<T> att, ReadOnlyMemory<T> qkv, int batch, int seq, int c, int heads)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(output.Length >= batch * seq * c && att.Length >= batch * heads * seq * seq && qkv.Length >= batch * seq * 3 * c
            && heads > 0 && c % heads == 0, "attention buffers");
        int d = c / heads;
        T scale = T.One / T.Sqrt(T.CreateChecked(d));
        Kernels.For(batch * heads, 1, (long)seq * seq * d, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (start, end) =>
        {
            for (int bh = start; bh < end; bh++)
            {
                int b = bh / heads, h = bh % heads;
                var x = qkv.Span[(b * seq * 3 * c)..];
                var q = x[(h * d)..];
                var k = x[(c + h * d)..];
                var v = x[(2 * c + h * d)..];
                var s = att.Span.Slice(bh * seq * seq, seq * seq);
                s.Clear();
                MatrixKernels.AccumulateProductTransposedRows(s, seq, q, 3 * c, k, 3 * c, 0, seq, d, seq, Causal.UpToRow); // (T, T)
                for (int t = 0; t < seq; t++)
                {
                    var row = s.Slice(t * seq, seq);
                    var live = row[..(t + 1)];
                    TensorPrimitives.Multiply(live, scale, live);
                    Softmax<T>(live, live);
                    row[(t + 1)..].Clear();
                }

                var y = output.Span[(b * seq * c + h * d)..];
                for (int t = 0; t < seq; t++)
                {
                    y.Slice(t * c, d).Clear();
                }

                MatrixKernels.AccumulateProductRows(y, c, s, seq, 1, v, 3 * c, 0, seq, seq, d, Causal.UpToRow); // (T, D)
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
        Kernels.For(batch * heads, 1, 2L * seq * seq * d, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (start, end) =>
        {
            var dscores = new T[seq * seq];
            for (int bh = start; bh < end; bh++)
            {
                int b = bh / heads, h = bh % heads;
                var x = qkv.Span[(b * seq * 3 * c)..];
                var q = x[(h * d)..];
                var k = x[(c + h * d)..];
                var v = x[(2 * c + h * d)..];
                var dx = dqkv.Span[(b * seq * 3 * c)..];
                var dq = dx[(h * d)..];
                var dk = dx[(c + h * d)..];
                var dv = dx[(2 * c + h * d)..];
                var dy = doutput.Span[(b * seq * c + h * d)..];
                var a = att.Span.Slice(bh * seq * seq, seq * seq);
                var ds = dscores.AsSpan();

                // Y = att V  →  datt = dY Vᵀ (causal), dV += attᵀ dY
                ds.Clear();
                MatrixKernels.AccumulateProductTransposedRows(ds, seq, dy, c, v, 3 * c, 0, seq, d, seq, Causal.UpToRow);
                MatrixKernels.AccumulateProductRows(dv, 3 * c, a, 1, seq, dy, c, 0, seq, seq, d, Causal.FromRow);

                // softmax and scale: dS[t2] = att[t2] (datt[t2] − Σ att·datt) / √D on t2 ≤ t, zero above
                for (int t = 0; t < seq; t++)
                {
                    var arow = a.Slice(t * seq, t + 1);
                    var drow = ds.Slice(t * seq, seq);
                    var live = drow[..(t + 1)];
                    T dot = TensorPrimitives.Dot(arow, live);
                    TensorPrimitives.Subtract(live, dot, live);
                    TensorPrimitives.Multiply(live, arow, live);
                    TensorPrimitives.Multiply(live, scale, live);
                    drow[(t + 1)..].Clear();
                }

                // S = Q Kᵀ  →  dQ += dS K, dK += dSᵀ Q
                MatrixKernels.AccumulateProductRows(dq, 3 * c, ds, seq, 1, k, 3 * c, 0, seq, seq, d, Causal.UpToRow);
                MatrixKernels.AccumulateProductRows(dk, 3 * c, ds, 1, seq, q, 3 * c, 0, seq, seq, d, Causal.FromRow);
            }
        });
    }
}

using System.Numerics.Tensors;
using System.Numerics;
using System.Runtime.CompilerServices;
using OnnxGpt.Contracts;

namespace OnnxGpt.Training;

/// <summary>
/// The GPT's layers as plain functions, one per layer and direction, in the manner of llm.c's <c>train_gpt2.c</c>.
/// Generic over the element type so the trainer (float) and the gradient check (double) run the same code.
/// Backward functions <b>accumulate</b> into their gradient outputs (<c>+=</c>); the caller zeroes them first.
/// Shapes: <c>N</c> rows (= B·T), <c>C</c> width, <c>OC</c> output width, <c>V</c> vocabulary, <c>H</c> heads,
/// <c>D</c> head size. All buffers are row-major. An empty bias (or layer-norm bias) means "no bias".
/// </summary>
public static partial class GptLayers
{
    // ---------------------------------------------------------------- encoder: x = wte[token] + wpe[position]

    /// <summary>output (B·T, C) = wte[tokens] + wpe[0..T).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void EncoderForward<T>(Span<T> output, ReadOnlySpan<int> tokens, ReadOnlySpan<T> wte, ReadOnlySpan<T> wpe,
        int batch, int seq, int c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(output.Length >= batch * seq * c && tokens.Length >= batch * seq && wpe.Length >= seq * c, "encoder buffers");
        for (int b = 0; b < batch; b++)
        {
            for (int t = 0; t < seq; t++)
            {
                int row = b * seq + t;
                int token = tokens[row];
                TensorPrimitives.Add(wte.Slice(token * c, c), wpe.Slice(t * c, c), output.Slice(row * c, c));
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void EncoderBackward<T>(Span<T> dwte, Span<T> dwpe, ReadOnlySpan<T> doutput, ReadOnlySpan<int> tokens,
        int batch, int seq, int c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(doutput.Length >= batch * seq * c && tokens.Length >= batch * seq && dwpe.Length >= seq * c, "encoder gradient buffers");
        for (int b = 0; b < batch; b++)
        {
            for (int t = 0; t < seq; t++)
            {
                int row = b * seq + t;
                var d = doutput.Slice(row * c, c);
                var we = dwte.Slice(tokens[row] * c, c);
                var pe = dwpe.Slice(t * c, c);
                TensorPrimitives.Add(we, d, we);
                TensorPrimitives.Add(pe, d, pe);
            }
        }
    }

    // ---------------------------------------------------------------- layer norm

    /// <summary>output = (x − mean) · rstd · weight + bias per row; saves mean and rstd (N) for the backward pass.</summary>
    public static void LayerNormForward<T>(Memory<T> output, Memory<T> mean, Memory<T> rstd, ReadOnlyMemory<T> input,
        ReadOnlyMemory<T> weight, ReadOnlyMemory<T> bias, int n, int c, T epsilon)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(output.Length >= n * c && input.Length >= n * c && mean.Length >= n && rstd.Length >= n && weight.Length == c
            && (bias.IsEmpty || bias.Length == c), "layer norm buffers");
        T invC = T.One / T.CreateChecked(c);
        Kernels.For(n, 8, 8L * c, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (start, end) =>
        {
            var o = output.Span;
            var x = input.Span;
            var w = weight.Span;
            var bi = bias.Span;
            var m = mean.Span;
            var r = rstd.Span;
            for (int i = start; i < end; i++)
            {
                var row = x.Slice(i * c, c);
                T mu = TensorPrimitives.Sum(row) * invC;
                T variance = T.Zero;
                foreach (var v in row)
                {
                    T d = v - mu;
                    variance += d * d;
                }

                T s = T.One / T.Sqrt(variance * invC + epsilon);
                var dst = o.Slice(i * c, c);
                for (int j = 0; j < c; j++)
                {
                    T normed = (row[j] - mu) * s;
                    dst[j] = bi.IsEmpty ? normed * w[j] : normed * w[j] + bi[j];
                }

                m[i] = mu;
                r[i] = s;
            }
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void LayerNormBackward<T>(Memory<T> dinput, Memory<T> dweight, Memory<T> dbias, ReadOnlyMemory<T> doutput,
        ReadOnlyMemory<T> input, ReadOnlyMemory<T> weight, ReadOnlyMemory<T> mean, ReadOnlyMemory<T> rstd, int n, int c)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(dinput.Length >= n * c && doutput.Length >= n * c && input.Length >= n * c && weight.Length == c
            && dweight.Length == c && (dbias.IsEmpty || dbias.Length == c), "layer norm gradient buffers");
        T invC = T.One / T.CreateChecked(c);

        // dinput: rows are independent.
        Kernels.For(n, 8, 10L * c, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (start, end) =>
        {
            var dx = dinput.Span;
            var dy = doutput.Span;
            var x = input.Span;
            var w = weight.Span;
            var m = mean.Span;
            var r = rstd.Span;
            for (int i = start; i < end; i++)
            {
                var xr = x.Slice(i * c, c);
                var dyr = dy.Slice(i * c, c);
                T mu = m[i], s = r[i];
                T dnormMean = T.Zero, dnormNormMean = T.Zero;
                for (int j = 0; j < c; j++)
                {
                    T normed = (xr[j] - mu) * s;
                    T dnorm = w[j] * dyr[j];
                    dnormMean += dnorm;
                    dnormNormMean += dnorm * normed;
                }

                dnormMean *= invC;
                dnormNormMean *= invC;
                var dxr = dx.Slice(i * c, c);
                for (int j = 0; j < c; j++)
                {
                    T normed = (xr[j] - mu) * s;
                    T dnorm = w[j] * dyr[j];
                    dxr[j] += (dnorm - dnormMean - normed * dnormNormMean) * s;
                }
            }
        });

        // dweight, dbias: a sum over rows, done in row order on one thread so it repeats exactly.
        {
            var dw = dweight.Span;
            var db = dbias.Span;
            var dy = doutput.Span;
            var x = input.Span;
            var m = mean.Span;
            var r = rstd.Span;
            for (int i = 0; i < n; i++)
            {
                var xr = x.Slice(i * c, c);
                var dyr = dy.Slice(i * c, c);
                T mu = m[i], s = r[i];
                for (int j = 0; j < c; j++)
                {
                    dw[j] += (xr[j] - mu) * s * dyr[j];
                }

                if (!db.IsEmpty)
                {
                    TensorPrimitives.Add(db, dyr, db);
                }
            }
        }
    }

    // ---------------------------------------------------------------- linear layers (GPT-2 Conv1D: W is [in, out])

    /// <summary>output (N, OC) = input (N, C) @ weight (C, OC) + bias (OC).</summary>
    public static void MatmulForward<T>(Memory<T> output, ReadOnlyMemory<T> input, ReadOnlyMemory<T> weight, ReadOnlyMemory<T> bias,
        int n, int c, int oc)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(output.Length >= n * oc && input.Length >= n * c && weight.Length == c * oc && (bias.IsEmpty || bias.Length == oc),
            "matmul buffers");
        var o = output[..(n * oc)];
        if (bias.IsEmpty)
        {
            o.Span.Clear();
        }
        else
        {
            for (int i = 0; i < n; i++)
            {
                bias.Span.CopyTo(o.Span.Slice(i * oc, oc));
            }
        }

        MatrixKernels.AccumulateProduct(o, input, c, 1, weight, n, c, oc);
    }

    /// <summary>dinput += doutput @ weightᵀ, dweight += inputᵀ @ doutput, dbias += column sums of doutput.</summary>
    public static void MatmulBackward<T>(Memory<T> dinput, Memory<T> dweight, Memory<T> dbias, ReadOnlyMemory<T> doutput,
        ReadOnlyMemory<T> input, ReadOnlyMemory<T> weight, int n, int c, int oc)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(dinput.Length >= n * c && doutput.Length >= n * oc && input.Length >= n * c && weight.Length == c * oc
            && dweight.Length == c * oc && (dbias.IsEmpty || dbias.Length == oc), "matmul gradient buffers");
        MatrixKernels.AccumulateProductTransposed(dinput, doutput, weight, n, oc, c);
        MatrixKernels.AccumulateProduct(dweight, input, 1, c, doutput, c, n, oc);
        if (!dbias.IsEmpty)
        {
            var db = dbias.Span;
            var dy = doutput.Span;
            for (int i = 0; i < n; i++)
            {
                TensorPrimitives.Add(db, dy.Slice(i * oc, oc), db);
            }
        }
    }

    // ---------------------------------------------------------------- output head: logits = x @ Eᵀ, E is [V, C]

    /// <summary>logits (N, V) = input (N, C) @ headᵀ, where head is the token embedding (or lm_head) [V, C].</summary>
    public static void HeadForward<T>(Memory<T> logits, ReadOnlyMemory<T> input, ReadOnlyMemory<T> head, int n, int c, int v)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(logits.Length >= n * v && input.Length >= n * c && head.Length == v * c, "head buffers");
        logits.Span[..(n * v)].Clear();
        MatrixKernels.AccumulateProductTransposed(logits, input, head, n, c, v);
    }

    /// <summary>dinput += dlogits @ head, dhead += dlogitsᵀ @ input.</summary>
    public static void HeadBackward<T>(Memory<T> dinput, Memory<T> dhead, ReadOnlyMemory<T> dlogits, ReadOnlyMemory<T> input,
        ReadOnlyMemory<T> head, int n, int c, int v)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(dinput.Length >= n * c && dhead.Length == v * c && dlogits.Length >= n * v && input.Length >= n * c
            && head.Length == v * c, "head gradient buffers");
        MatrixKernels.AccumulateProduct(dinput, dlogits, v, 1, head, n, v, c);
        MatrixKernels.AccumulateProduct(dhead, dlogits, 1, v, input, v, n, c);
    }

    // ---------------------------------------------------------------- residual

    public static void ResidualForward<T>(Span<T> output, ReadOnlySpan<T> a, ReadOnlySpan<T> b)
        where T : unmanaged, IFloatingPointIeee754<T> => TensorPrimitives.Add(a, b, output);

    public static void ResidualBackward<T>(Span<T> da, Span<T> db, ReadOnlySpan<T> doutput)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        TensorPrimitives.Add(da, doutput, da);
        TensorPrimitives.Add(db, doutput, db);
    }

    // ---------------------------------------------------------------- softmax + cross-entropy

    /// <summary>
    /// probs (N, V) = softmax(logits); losses (N) = −log probs[target]. Returns the mean loss.
    /// </summary>
    public static T CrossEntropyForward<T>(Memory<T> probs, Memory<T> losses, ReadOnlyMemory<T> logits, ReadOnlyMemory<int> targets,
        int n, int v)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(probs.Length >= n * v && losses.Length >= n && logits.Length >= n * v && targets.Length >= n, "cross-entropy buffers");
        Kernels.For(n, 16, 4L * v, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (start, end) =>
        {
            var p = probs.Span;
            var l = losses.Span;
            var z = logits.Span;
            var tg = targets.Span;
            for (int i = start; i < end; i++)
            {
                var pr = p.Slice(i * v, v);
                Softmax(z.Slice(i * v, v), pr);
                l[i] = -T.Log(pr[tg[i]]);
            }
        });
        T sum = T.Zero;
        foreach (var x in losses.Span[..n])
        {
            sum += x;
        }

        return sum / T.CreateChecked(n);
    }

    /// <summary>dlogits += scale · (probs − onehot(target)); scale is dLoss/dloss_i (1/N for the mean).</summary>
    public static void CrossEntropyBackward<T>(Memory<T> dlogits, ReadOnlyMemory<T> probs, ReadOnlyMemory<int> targets, T scale, int n, int v)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(dlogits.Length >= n * v && probs.Length >= n * v && targets.Length >= n, "cross-entropy gradient buffers");
        Kernels.For(n, 16, 2L * v, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (start, end) =>
        {
            var d = dlogits.Span;
            var p = probs.Span;
            var tg = targets.Span;
            for (int i = start; i < end; i++)
            {
                var dr = d.Slice(i * v, v);
                TensorPrimitives.MultiplyAdd(p.Slice(i * v, v), scale, dr, dr);
                dr[tg[i]] -= scale;
            }
        });
    }

    /// <summary>A numerically stable softmax of one row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Softmax<T>(ReadOnlySpan<T> logits, Span<T> probs)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T max = TensorPrimitives.Max(logits);
        TensorPrimitives.Subtract(logits, max, probs);
        TensorPrimitives.Exp(probs, probs);
        T sum = TensorPrimitives.Sum(probs);
        TensorPrimitives.Multiply(probs, T.One / sum, probs);
    }

    private static void Require(bool condition, string what)
    {
        if (!condition)
        {
            throw new ArgumentException($"{what}: a buffer is shorter than the shapes given need (or a weight has the wrong size).");
        }
    }
}

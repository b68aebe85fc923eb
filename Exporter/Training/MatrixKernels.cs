using System.Numerics;
using static OnnxGpt.Training.Kernels;

namespace OnnxGpt.Training;

/// <summary>
/// The two matrix products every linear layer's forward and backward pass reduce to, register-blocked on
/// <see cref="Vector{T}"/> (4 output rows × 2 vectors of columns per inner loop) and split over output rows.
/// Each output element is summed by one thread in a fixed order, so results repeat exactly.
/// </summary>
internal static class MatrixKernels
{
    /// <summary>
    /// out (rows, m) += A (rows, inner) @ b (inner, m), where A(r, i) = a[r·aRowStride + i·aInnerStride]
    /// (a plain matrix, or a transposed one when the strides are swapped).
    /// </summary>
    public static void AccumulateProduct<T>(Memory<T> output, ReadOnlyMemory<T> a, int aRowStride, int aInnerStride,
        ReadOnlyMemory<T> b, int rows, int inner, int m)
        where T : unmanaged, INumber<T>
    {
        Check(output.Length >= rows * m && b.Length >= inner * m
            && a.Length >= (long)(rows - 1) * aRowStride + (long)(inner - 1) * aInnerStride + 1);
        For(rows, 4, 2L * inner * m, (start, end) =>
            AccumulateProductRows(output.Span, a.Span, aRowStride, aInnerStride, b.Span, start, end, inner, m));
    }

    /// <summary>out (rows, m) += a (rows, inner) @ b (m, inner)ᵀ: dot products of rows.</summary>
    public static void AccumulateProductTransposed<T>(Memory<T> output, ReadOnlyMemory<T> a, ReadOnlyMemory<T> b, int rows, int inner, int m)
        where T : unmanaged, INumber<T>
    {
        Check(output.Length >= rows * m && a.Length >= rows * inner && b.Length >= m * inner);
        For(rows, 4, 2L * inner * m, (start, end) =>
            AccumulateProductTransposedRows(output.Span, a.Span, b.Span, start, end, inner, m));
    }

    private static void AccumulateProductRows<T>(Span<T> o, ReadOnlySpan<T> a, int rs, int ins, ReadOnlySpan<T> b,
        int start, int end, int inner, int m)
        where T : unmanaged, INumber<T>
    {
        int w = Vector<T>.Count;
        int r = start;
        for (; r + 4 <= end; r += 4)
        {
            int a0 = r * rs, a1 = a0 + rs, a2 = a1 + rs, a3 = a2 + rs;
            int o0 = r * m, o1 = o0 + m, o2 = o1 + m, o3 = o2 + m;
            int j = 0;
            for (; j + 2 * w <= m; j += 2 * w)
            {
                Vector<T> c00 = Load<T>(o, o0 + j), c01 = Load<T>(o, o0 + j + w);
                Vector<T> c10 = Load<T>(o, o1 + j), c11 = Load<T>(o, o1 + j + w);
                Vector<T> c20 = Load<T>(o, o2 + j), c21 = Load<T>(o, o2 + j + w);
                Vector<T> c30 = Load<T>(o, o3 + j), c31 = Load<T>(o, o3 + j + w);
                for (int i = 0, ai = 0, bi = j; i < inner; i++, ai += ins, bi += m)
                {
                    var b0 = Load(b, bi);
                    var b1 = Load(b, bi + w);
                    var x = new Vector<T>(a[a0 + ai]);
                    c00 = MultiplyAdd(x, b0, c00);
                    c01 = MultiplyAdd(x, b1, c01);
                    x = new Vector<T>(a[a1 + ai]);
                    c10 = MultiplyAdd(x, b0, c10);
                    c11 = MultiplyAdd(x, b1, c11);
                    x = new Vector<T>(a[a2 + ai]);
                    c20 = MultiplyAdd(x, b0, c20);
                    c21 = MultiplyAdd(x, b1, c21);
                    x = new Vector<T>(a[a3 + ai]);
                    c30 = MultiplyAdd(x, b0, c30);
                    c31 = MultiplyAdd(x, b1, c31);
                }

                Store(c00, o, o0 + j);
                Store(c01, o, o0 + j + w);
                Store(c10, o, o1 + j);
                Store(c11, o, o1 + j + w);
                Store(c20, o, o2 + j);
                Store(c21, o, o2 + j + w);
                Store(c30, o, o3 + j);
                Store(c31, o, o3 + j + w);
            }

            for (; j + w <= m; j += w)
            {
                Vector<T> c0 = Load<T>(o, o0 + j), c1 = Load<T>(o, o1 + j), c2 = Load<T>(o, o2 + j), c3 = Load<T>(o, o3 + j);
                for (int i = 0, ai = 0, bi = j; i < inner; i++, ai += ins, bi += m)
                {
                    var bv = Load(b, bi);
                    c0 = MultiplyAdd(new Vector<T>(a[a0 + ai]), bv, c0);
                    c1 = MultiplyAdd(new Vector<T>(a[a1 + ai]), bv, c1);
                    c2 = MultiplyAdd(new Vector<T>(a[a2 + ai]), bv, c2);
                    c3 = MultiplyAdd(new Vector<T>(a[a3 + ai]), bv, c3);
                }

                Store(c0, o, o0 + j);
                Store(c1, o, o1 + j);
                Store(c2, o, o2 + j);
                Store(c3, o, o3 + j);
            }

            for (; j < m; j++)
            {
                T s0 = o[o0 + j], s1 = o[o1 + j], s2 = o[o2 + j], s3 = o[o3 + j];
                for (int i = 0, ai = 0, bi = j; i < inner; i++, ai += ins, bi += m)
                {
                    T bv = b[bi];
                    s0 += a[a0 + ai] * bv;
                    s1 += a[a1 + ai] * bv;
                    s2 += a[a2 + ai] * bv;
                    s3 += a[a3 + ai] * bv;
                }

                o[o0 + j] = s0;
                o[o1 + j] = s1;
                o[o2 + j] = s2;
                o[o3 + j] = s3;
            }
        }

        for (; r < end; r++)
        {
            int a0 = r * rs, o0 = r * m;
            int j = 0;
            for (; j + w <= m; j += w)
            {
                Vector<T> c0 = Load<T>(o, o0 + j);
                for (int i = 0, ai = 0, bi = j; i < inner; i++, ai += ins, bi += m)
                {
                    c0 = MultiplyAdd(new Vector<T>(a[a0 + ai]), Load(b, bi), c0);
                }

                Store(c0, o, o0 + j);
            }

            for (; j < m; j++)
            {
                T s0 = o[o0 + j];
                for (int i = 0, ai = 0, bi = j; i < inner; i++, ai += ins, bi += m)
                {
                    s0 += a[a0 + ai] * b[bi];
                }

                o[o0 + j] = s0;
            }
        }
    }

    private static void AccumulateProductTransposedRows<T>(Span<T> o, ReadOnlySpan<T> a, ReadOnlySpan<T> b,
        int start, int end, int inner, int m)
        where T : unmanaged, INumber<T>
    {
        int w = Vector<T>.Count;
        int vecEnd = inner - inner % w;
        int r = start;
        for (; r + 4 <= end; r += 4)
        {
            int a0 = r * inner, a1 = a0 + inner, a2 = a1 + inner, a3 = a2 + inner;
            for (int j = 0; j < m; j++)
            {
                int bj = j * inner;
                Vector<T> c0 = Vector<T>.Zero, c1 = Vector<T>.Zero, c2 = Vector<T>.Zero, c3 = Vector<T>.Zero;
                for (int i = 0; i < vecEnd; i += w)
                {
                    var bv = Load(b, bj + i);
                    c0 = MultiplyAdd(Load(a, a0 + i), bv, c0);
                    c1 = MultiplyAdd(Load(a, a1 + i), bv, c1);
                    c2 = MultiplyAdd(Load(a, a2 + i), bv, c2);
                    c3 = MultiplyAdd(Load(a, a3 + i), bv, c3);
                }

                T s0 = Vector.Sum(c0), s1 = Vector.Sum(c1), s2 = Vector.Sum(c2), s3 = Vector.Sum(c3);
                for (int i = vecEnd; i < inner; i++)
                {
                    T bv = b[bj + i];
                    s0 += a[a0 + i] * bv;
                    s1 += a[a1 + i] * bv;
                    s2 += a[a2 + i] * bv;
                    s3 += a[a3 + i] * bv;
                }

                o[r * m + j] += s0;
                o[(r + 1) * m + j] += s1;
                o[(r + 2) * m + j] += s2;
                o[(r + 3) * m + j] += s3;
            }
        }

        for (; r < end; r++)
        {
            int a0 = r * inner;
            for (int j = 0; j < m; j++)
            {
                int bj = j * inner;
                Vector<T> c0 = Vector<T>.Zero;
                for (int i = 0; i < vecEnd; i += w)
                {
                    c0 = MultiplyAdd(Load(a, a0 + i), Load(b, bj + i), c0);
                }

                T s0 = Vector.Sum(c0);
                for (int i = vecEnd; i < inner; i++)
                {
                    s0 += a[a0 + i] * b[bj + i];
                }

                o[r * m + j] += s0;
            }
        }
    }

    private static void Check(bool ok)
    {
        if (!ok)
        {
            throw new ArgumentException("matrix product: a buffer is shorter than the shapes given need.");
        }
    }
}

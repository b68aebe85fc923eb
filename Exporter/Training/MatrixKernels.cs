using System.Numerics;
using System.Runtime.CompilerServices;
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
            AccumulateProductRows(output.Span, m, a.Span, aRowStride, aInnerStride, b.Span, m, start, end, inner, m, Causal.None));
    }

    /// <summary>out (rows, m) += a (rows, inner) @ b (m, inner)ᵀ: dot products of rows.</summary>
    public static void AccumulateProductTransposed<T>(Memory<T> output, ReadOnlyMemory<T> a, ReadOnlyMemory<T> b, int rows, int inner, int m)
        where T : unmanaged, INumber<T>
    {
        Check(output.Length >= rows * m && a.Length >= rows * inner && b.Length >= m * inner);
        For(rows, 4, 2L * inner * m, (start, end) =>
            AccumulateProductTransposedRows(output.Span, m, a.Span, inner, b.Span, inner, start, end, inner, m, Causal.None));
    }

    /// <summary>
    /// Rows [start, end) of out (·, m) += A (·, inner) @ b (inner, m) with explicit row strides (ldo, ldb) and
    /// A(r, i) = a[r·rs + i·ins]. <paramref name="causal"/> limits the inner range to where a causal A can be
    /// non-zero: i ≤ r (<see cref="Causal.UpToRow"/>) or i ≥ r (<see cref="Causal.FromRow"/>); A must be zero
    /// outside it, since a block of four rows uses the widest of its rows' ranges. The caller guarantees the bounds.
    /// </summary>
    internal static void AccumulateProductRows<T>(Span<T> o, int ldo, ReadOnlySpan<T> a, int rs, int ins, ReadOnlySpan<T> b, int ldb,
        int start, int end, int inner, int m, Causal causal)
        where T : unmanaged, INumber<T>
    {
        // Walk the inner dimension in blocks so the slice of b in use stays in cache while every row block uses it.
        // Each output element still sums its terms in the same order, so blocking does not change the result.
        int block = Math.Max(16, (1 << 16) / Math.Max(1, m));
        for (int ib = 0; ib < inner; ib += block)
        {
            AccumulateProductRowsBlock(o, ldo, a, rs, ins, b, ldb, start, end, ib, Math.Min(inner, ib + block), m, causal);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateProductRowsBlock<T>(Span<T> o, int ldo, ReadOnlySpan<T> a, int rs, int ins, ReadOnlySpan<T> b, int ldb,
        int start, int end, int blockStart, int blockEnd, int m, Causal causal)
        where T : unmanaged, INumber<T>
    {
        int w = Vector<T>.Count;
        int r = start;
        for (; r + 4 <= end; r += 4)
        {
            int a0 = r * rs, a1 = a0 + rs, a2 = a1 + rs, a3 = a2 + rs;
            int o0 = r * ldo, o1 = o0 + ldo, o2 = o1 + ldo, o3 = o2 + ldo;
            int iStart = causal == Causal.FromRow ? Math.Max(r, blockStart) : blockStart;
            int iEnd = causal == Causal.UpToRow ? Math.Min(blockEnd, r + 4) : blockEnd;
            if (iStart >= iEnd)
            {
                continue;
            }

            int j = 0;
            for (; j + 2 * w <= m; j += 2 * w)
            {
                Vector<T> c00 = Load<T>(o, o0 + j), c01 = Load<T>(o, o0 + j + w);
                Vector<T> c10 = Load<T>(o, o1 + j), c11 = Load<T>(o, o1 + j + w);
                Vector<T> c20 = Load<T>(o, o2 + j), c21 = Load<T>(o, o2 + j + w);
                Vector<T> c30 = Load<T>(o, o3 + j), c31 = Load<T>(o, o3 + j + w);
                for (int i = iStart, ai = iStart * ins, bi = iStart * ldb + j; i < iEnd; i++, ai += ins, bi += ldb)
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
                for (int i = iStart, ai = iStart * ins, bi = iStart * ldb + j; i < iEnd; i++, ai += ins, bi += ldb)
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
                for (int i = iStart, ai = iStart * ins, bi = iStart * ldb + j; i < iEnd; i++, ai += ins, bi += ldb)
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
            int a0 = r * rs, o0 = r * ldo;
            int iStart = causal == Causal.FromRow ? Math.Max(r, blockStart) : blockStart;
            int iEnd = causal == Causal.UpToRow ? Math.Min(blockEnd, r + 1) : blockEnd;
            if (iStart >= iEnd)
            {
                continue;
            }

            int j = 0;
            for (; j + w <= m; j += w)
            {
                Vector<T> c0 = Load<T>(o, o0 + j);
                for (int i = iStart, ai = iStart * ins, bi = iStart * ldb + j; i < iEnd; i++, ai += ins, bi += ldb)
                {
                    c0 = MultiplyAdd(new Vector<T>(a[a0 + ai]), Load(b, bi), c0);
                }

                Store(c0, o, o0 + j);
            }

            for (; j < m; j++)
            {
                T s0 = o[o0 + j];
                for (int i = iStart, ai = iStart * ins, bi = iStart * ldb + j; i < iEnd; i++, ai += ins, bi += ldb)
                {
                    s0 += a[a0 + ai] * b[bi];
                }

                o[o0 + j] = s0;
            }
        }
    }

    /// <summary>
    /// Rows [start, end) of out (·, m) += a (·, inner) @ b (m, inner)ᵀ with row strides ldo, lda, ldb.
    /// With <see cref="Causal.UpToRow"/> only columns j ≤ r are wanted: a block of four rows computes up to its last
    /// row, so a few entries above the diagonal get values the caller must ignore.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void AccumulateProductTransposedRows<T>(Span<T> o, int ldo, ReadOnlySpan<T> a, int lda, ReadOnlySpan<T> b, int ldb,
        int start, int end, int inner, int m, Causal causal)
        where T : unmanaged, INumber<T>
    {
        int w = Vector<T>.Count;
        int vecEnd = inner - inner % w;
        int r = start;
        for (; r + 4 <= end; r += 4)
        {
            int a0 = r * lda, a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda;
            int jEnd = causal == Causal.UpToRow ? Math.Min(m, r + 4) : m;
            for (int j = 0; j < jEnd; j++)
            {
                int bj = j * ldb;
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

                o[r * ldo + j] += s0;
                o[(r + 1) * ldo + j] += s1;
                o[(r + 2) * ldo + j] += s2;
                o[(r + 3) * ldo + j] += s3;
            }
        }

        for (; r < end; r++)
        {
            int a0 = r * lda;
            int jEnd = causal == Causal.UpToRow ? Math.Min(m, r + 1) : m;
            for (int j = 0; j < jEnd; j++)
            {
                int bj = j * ldb;
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

                o[r * ldo + j] += s0;
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

/// <summary>Which part of the inner (or column) range a causal product needs.</summary>
internal enum Causal
{
    None,
    UpToRow,
    FromRow,
}

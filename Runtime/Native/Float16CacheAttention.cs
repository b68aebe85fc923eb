using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace OnnxGpt.Runtime.Native;

/// <summary>
/// The arithmetic of <see cref="Contracts.OnnxGptOperators.Float16CacheAttention"/>: one (row, head) pair at a time,
/// so that ONNX Runtime's intra-op threads can share a step's B·H pairs. The cache is read as float16 straight from
/// its buffer, 16 values at a time, which halves the bytes an attention step over a long context reads against a
/// float32 cache; the arithmetic is float32.
/// </summary>
internal static unsafe class Float16CacheAttention
{
    /// <summary>Queries handled together: each key and value row is converted once for this many of them (a prompt).</summary>
    public const int QueryTile = 8;

    /// <summary>Values per vector: the head size must be a multiple of it.</summary>
    public const int Lanes = 16;

    /// <summary>One step's tensors and per-row positions, shared by every (row, head) pair.</summary>
    public struct Step
    {
        /// <summary>(B, T, 3·H·D): q, then k, then v; head h at h·D within each.</summary>
        public float* Qkv;

        /// <summary>(B, H, Capacity, D) float16 bits: the present key, which the new keys are written into.</summary>
        public ushort* Key;

        /// <summary>As <see cref="Key"/>, for values.</summary>
        public ushort* Value;

        /// <summary>(B, T, H·D).</summary>
        public float* Output;

        /// <summary>Per row: cached positions before the step.</summary>
        public int* Past;

        /// <summary>Per row: new tokens (the first <c>Count</c> of the T query positions; the rest are padding).</summary>
        public int* Count;

        public int Tokens;
        public int Heads;
        public int Capacity;
        public int HeadSize;
        public float Scale;

        /// <summary>Set (to 1) by a pair that failed; the step then reports an error.</summary>
        public int Failed;
    }

    [ThreadStatic]
    private static float[]? t_scores;

    /// <summary>Writes the new keys and values of (row, head) into the cache and computes its attention outputs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Pair(Step* step, int row, int head)
    {
        int t = step->Tokens, d = step->HeadSize, width = step->Heads * d, stride = 3 * width;
        int past = step->Past[row], count = step->Count[row];
        float* qkv = step->Qkv + (long)row * t * stride;
        long slice = ((long)row * step->Heads + head) * step->Capacity * d;
        ushort* keys = step->Key + slice;
        ushort* values = step->Value + slice;

        for (int i = 0; i < count; i++)
        {
            float* token = qkv + (long)i * stride + head * d;
            Store(token + width, keys + (long)(past + i) * d, d);
            Store(token + 2 * width, values + (long)(past + i) * d, d);
        }

        int needed = QueryTile * (past + count);
        var scores = t_scores;
        if (scores is null || scores.Length < needed)
        {
            t_scores = scores = new float[Math.Max(needed, 2 * (scores?.Length ?? 0))];
        }

        fixed (float* s = scores)
        {
            if (d == 64)
            {
                for (int i0 = 0; i0 < count; i0 += 4)
                {
                    Tile64(step, qkv, keys, values, s, row, head, i0, Math.Min(4, count - i0), past);
                }
            }
            else
            {
                for (int i0 = 0; i0 < count; i0 += QueryTile)
                {
                    Tile(step, qkv, keys, values, s, row, head, i0, Math.Min(QueryTile, count - i0), past);
                }
            }
        }

        float* output = step->Output + (long)row * t * width + head * d;
        for (int i = count; i < t; i++)
        {
            new Span<float>(output + (long)i * width, d).Clear();
        }
    }

    /// <summary>
    /// <see cref="Tile"/> for head size 64 (every GPT-2 size), up to 4 queries, with queries and sums in registers. A key
    /// or value row is four 32-byte loads, each widened to 16 floats that read as 2^−112 times the values
    /// (<see cref="LoadScaled"/>): the queries carry the factor 2^112 instead, and so do the exponentiated scores, so
    /// that no product leaves float32's normal range; the output's normalisation takes it out again.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile64(Step* step, float* qkv, ushort* keys, ushort* values, float* scores, int row, int head, int i0, int n, int past)
    {
        const int d = 64;
        int width = step->Heads * d, stride = 3 * width, seen = past + i0 + n;
        var scale = Vector512.Create(step->Scale * Two112);
        float* q = qkv + (long)i0 * stride + head * d;
        var (a0, a1, a2, a3) = Query(q, scale);
        var (b0, b1, b2, b3) = n > 1 ? Query(q + stride, scale) : default;
        var (c0, c1, c2, c3) = n > 2 ? Query(q + 2 * stride, scale) : default;
        var (e0, e1, e2, e3) = n > 3 ? Query(q + 3 * stride, scale) : default;

        // Scores: query qi's row (stride `seen`) holds keys 0 .. past + i0 + qi.
        int j = 0;
        if (n == 1)
        {
            // One query (decoding): four keys at a time share one reduction.
            for (; j + 4 <= seen; j += 4)
            {
                ushort* key = keys + (long)j * d;
                var sums = Sum4(Dot(a0, a1, a2, a3, key), Dot(a0, a1, a2, a3, key + d), Dot(a0, a1, a2, a3, key + 2 * d), Dot(a0, a1, a2, a3, key + 3 * d));
                sums.Store(scores + j);
            }
        }

        for (; j < seen; j++)
        {
            ushort* key = keys + (long)j * d;
            int first = j - past - i0;   // the first query of the tile that sees key j (≤ 0: all)
            var sums = Sum4(
                Dot(a0, a1, a2, a3, key),
                n > 1 && first <= 1 ? Dot(b0, b1, b2, b3, key) : default,
                n > 2 && first <= 2 ? Dot(c0, c1, c2, c3, key) : default,
                n > 3 && first <= 3 ? Dot(e0, e1, e2, e3, key) : default);
            float* at = scores + j;
            if (first <= 0)
            {
                at[0] = sums.GetElement(0);
            }

            if (n > 1 && first <= 1)
            {
                at[seen] = sums.GetElement(1);
            }

            if (n > 2 && first <= 2)
            {
                at[2 * seen] = sums.GetElement(2);
            }

            if (n > 3 && first <= 3)
            {
                at[3 * seen] = sums.GetElement(3);
            }
        }

        var inverse = stackalloc float[4];
        Softmax(scores, seen, past + i0, n, inverse, Ln2Times112);

        // The same registers now sum the weighted values.
        a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = c0 = c1 = c2 = c3 = e0 = e1 = e2 = e3 = Vector512<float>.Zero;
        for (j = 0; j < seen; j++)
        {
            ushort* value = values + (long)j * d;
            var (v0, v1, v2, v3) = (LoadScaled(value), LoadScaled(value + 16), LoadScaled(value + 32), LoadScaled(value + 48));
            int first = j - past - i0;
            float* at = scores + j;
            if (first <= 0)
            {
                var p = Vector512.Create(at[0]);
                (a0, a1, a2, a3) = (Vector512.FusedMultiplyAdd(p, v0, a0), Vector512.FusedMultiplyAdd(p, v1, a1), Vector512.FusedMultiplyAdd(p, v2, a2), Vector512.FusedMultiplyAdd(p, v3, a3));
            }

            if (n > 1 && first <= 1)
            {
                var p = Vector512.Create(at[seen]);
                (b0, b1, b2, b3) = (Vector512.FusedMultiplyAdd(p, v0, b0), Vector512.FusedMultiplyAdd(p, v1, b1), Vector512.FusedMultiplyAdd(p, v2, b2), Vector512.FusedMultiplyAdd(p, v3, b3));
            }

            if (n > 2 && first <= 2)
            {
                var p = Vector512.Create(at[2 * seen]);
                (c0, c1, c2, c3) = (Vector512.FusedMultiplyAdd(p, v0, c0), Vector512.FusedMultiplyAdd(p, v1, c1), Vector512.FusedMultiplyAdd(p, v2, c2), Vector512.FusedMultiplyAdd(p, v3, c3));
            }

            if (n > 3 && first <= 3)
            {
                var p = Vector512.Create(at[3 * seen]);
                (e0, e1, e2, e3) = (Vector512.FusedMultiplyAdd(p, v0, e0), Vector512.FusedMultiplyAdd(p, v1, e1), Vector512.FusedMultiplyAdd(p, v2, e2), Vector512.FusedMultiplyAdd(p, v3, e3));
            }
        }

        float* output = step->Output + ((long)row * step->Tokens + i0) * width + head * d;
        StoreRow(output, inverse[0] * Two112, a0, a1, a2, a3);
        if (n > 1)
        {
            StoreRow(output + width, inverse[1] * Two112, b0, b1, b2, b3);
        }

        if (n > 2)
        {
            StoreRow(output + 2 * width, inverse[2] * Two112, c0, c1, c2, c3);
        }

        if (n > 3)
        {
            StoreRow(output + 3 * width, inverse[3] * Two112, e0, e1, e2, e3);
        }
    }

    /// <summary>2^112: the factor between a float16 value and its bits read by <see cref="LoadScaled"/>.</summary>
    private const float Two112 = 5.1922968585348276e33f;

    /// <summary>112 · ln 2: exp(s − max + this) = 2^112 · exp(s − max).</summary>
    private const float Ln2Times112 = 77.632484f;

    /// <summary>The 16-lane partial products of a query (four vectors) with the key row at <paramref name="key"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Dot(Vector512<float> q0, Vector512<float> q1, Vector512<float> q2, Vector512<float> q3, ushort* key) =>
        Vector512.FusedMultiplyAdd(q3, LoadScaled(key + 48), Vector512.FusedMultiplyAdd(q2, LoadScaled(key + 32),
            Vector512.FusedMultiplyAdd(q1, LoadScaled(key + 16), q0 * LoadScaled(key))));

    /// <summary>The lane sums of four vectors, in one reduction: (Σx, Σy, Σz, Σw).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Sum4(Vector512<float> x, Vector512<float> y, Vector512<float> z, Vector512<float> w)
    {
        if (!Avx512F.IsSupported)
        {
            return Vector128.Create(Vector512.Sum(x), Vector512.Sum(y), Vector512.Sum(z), Vector512.Sum(w));
        }

        // Within each 128-bit lane: (x0+x2, y0+y2, x1+x3, y1+y3) and the same for z, w; then one column per vector.
        var xy = Avx512F.UnpackLow(x, y) + Avx512F.UnpackHigh(x, y);
        var zw = Avx512F.UnpackLow(z, w) + Avx512F.UnpackHigh(z, w);
        var lanes = Avx512F.Shuffle(xy, zw, 0b01_00_01_00) + Avx512F.Shuffle(xy, zw, 0b11_10_11_10);
        var half = lanes.GetLower() + lanes.GetUpper();
        return half.GetLower() + half.GetUpper();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float>, Vector512<float>, Vector512<float>, Vector512<float>) Query(float* q, Vector512<float> scale) =>
        (Vector512.Load(q) * scale, Vector512.Load(q + 16) * scale, Vector512.Load(q + 32) * scale, Vector512.Load(q + 48) * scale);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(float* output, float inverse, Vector512<float> o0, Vector512<float> o1, Vector512<float> o2, Vector512<float> o3)
    {
        var norm = Vector512.Create(inverse);
        (o0 * norm).Store(output);
        (o1 * norm).Store(output + 16);
        (o2 * norm).Store(output + 32);
        (o3 * norm).Store(output + 48);
    }

    /// <summary>
    /// Exponentiates each of <paramref name="n"/> score rows (stride <paramref name="seen"/>; row qi holds
    /// <paramref name="position"/> + qi + 1 keys) less its maximum, plus <paramref name="shift"/>, in place;
    /// <paramref name="inverse"/> gets 1 / each row's sum. Its own vector loops (<see cref="Exp"/>), not
    /// TensorPrimitives': those would run unoptimised for the first calls of a process, a whole first prompt long.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Softmax(float* scores, int seen, int position, int n, float* inverse, float shift = 0)
    {
        for (int qi = 0; qi < n; qi++)
        {
            float* row = scores + (long)qi * seen;
            int length = position + qi + 1, i = 0;
            var max = Vector512.Create(float.NegativeInfinity);
            for (; i + Lanes <= length; i += Lanes)
            {
                max = Vector512.Max(max, Vector512.Load(row + i));
            }

            float top = max.GetElement(0);
            for (int l = 1; l < Lanes; l++)
            {
                top = MathF.Max(top, max.GetElement(l));
            }

            for (int k = i; k < length; k++)
            {
                top = MathF.Max(top, row[k]);
            }

            var bias = Vector512.Create(top - shift);
            var sum = Vector512<float>.Zero;
            for (i = 0; i + Lanes <= length; i += Lanes)
            {
                var e = Exp(Vector512.Load(row + i) - bias);
                e.Store(row + i);
                sum += e;
            }

            float total = Vector512.Sum(sum);
            for (; i < length; i++)
            {
                row[i] = MathF.Exp(row[i] - (top - shift));
                total += row[i];
            }

            inverse[qi] = 1f / total;
        }
    }

    /// <summary>
    /// e^x for 16 values, to about 1 ulp: x = n·ln 2 + r with |r| ≤ ln 2 / 2 (ln 2 in two parts), e^r by its Taylor
    /// polynomial to degree 7, times 2^n through the exponent bits. Inputs are clamped to [−87, 88], where the result
    /// stays a normal float32 (softmax inputs are at most <see cref="Ln2Times112"/>; below −87 the weight is negligible).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Exp(Vector512<float> x)
    {
        x = Vector512.Min(Vector512.Max(x, Vector512.Create(-87f)), Vector512.Create(88f));
        var n = Vector512.Round(x * Vector512.Create(1.44269504f));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693145752f), x);    // ln 2, high part (exact in n·hi)
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-1.42860677e-6f), r);          // ln 2, low part
        var p = Vector512.Create(1f / 5040);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 720));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 120));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 24));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1f / 6));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(0.5f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<float>.One);
        var scale = ((Vector512.ConvertToInt32(n) + Vector512.Create(127)) << 23).AsSingle();
        return p * scale;
    }

    /// <summary>Queries i0 .. i0 + n − 1 of (row, head): query i sits at position past + i and sees keys 0 .. past + i.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile(Step* step, float* qkv, ushort* keys, ushort* values, float* scores, int row, int head, int i0, int n, int past)
    {
        int d = step->HeadSize, chunks = d / Lanes, width = step->Heads * d, stride = 3 * width;
        int seen = past + i0 + n;   // keys the tile's last query sees
        var q = stackalloc Vector512<float>[QueryTile * chunks];
        var acc = stackalloc Vector512<float>[QueryTile];
        var o = stackalloc Vector512<float>[QueryTile * chunks];
        var scale = Vector512.Create(step->Scale);
        for (int qi = 0; qi < n; qi++)
        {
            float* query = qkv + (long)(i0 + qi) * stride + head * d;
            for (int c = 0; c < chunks; c++)
            {
                q[qi * chunks + c] = Vector512.Load(query + c * Lanes) * scale;
                o[qi * chunks + c] = Vector512<float>.Zero;
            }
        }

        // Scores: row qi of the tile holds its past + i0 + qi + 1 keys (stride `seen`).
        for (int j = 0; j < seen; j++)
        {
            int first = Math.Max(0, j - past - i0);   // the first query of the tile that sees key j
            for (int qi = first; qi < n; qi++)
            {
                acc[qi] = Vector512<float>.Zero;
            }

            ushort* key = keys + (long)j * d;
            for (int c = 0; c < chunks; c++)
            {
                var k = Load16(key + c * Lanes);
                for (int qi = first; qi < n; qi++)
                {
                    acc[qi] = Vector512.FusedMultiplyAdd(q[qi * chunks + c], k, acc[qi]);
                }
            }

            for (int qi = first; qi < n; qi++)
            {
                scores[(long)qi * seen + j] = Vector512.Sum(acc[qi]);
            }
        }

        var inverse = stackalloc float[QueryTile];
        Softmax(scores, seen, past + i0, n, inverse);

        for (int j = 0; j < seen; j++)
        {
            int first = Math.Max(0, j - past - i0);
            ushort* value = values + (long)j * d;
            for (int c = 0; c < chunks; c++)
            {
                var v = Load16(value + c * Lanes);
                for (int qi = first; qi < n; qi++)
                {
                    o[qi * chunks + c] = Vector512.FusedMultiplyAdd(Vector512.Create(scores[(long)qi * seen + j]), v, o[qi * chunks + c]);
                }
            }
        }

        float* output = step->Output + (long)row * step->Tokens * width + head * d;
        for (int qi = 0; qi < n; qi++)
        {
            var norm = Vector512.Create(inverse[qi]);
            for (int c = 0; c < chunks; c++)
            {
                (o[qi * chunks + c] * norm).Store(output + (long)(i0 + qi) * width + c * Lanes);
            }
        }
    }

    /// <summary>
    /// 16 float16 values (as bits, sign-extended to 32) to float32, exactly for every finite value: the sign lands in
    /// bit 31 and the exponent and mantissa in bits 27..13, which read as a float32 of 2^−112 times the value (float16
    /// subnormals as float32 subnormals), so one multiplication by 2^112 gives the value. The cache holds no
    /// infinities (<see cref="Store"/> saturates); a NaN written there reads as a large finite value.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> ToSingle(Vector512<int> halves) =>
        ((halves << 13) & Vector512.Create(unchecked((int)0x8FFFE000))).AsSingle() * Vector512.Create(239 << 23).AsSingle();

    /// <summary>
    /// 16 float16 values at <paramref name="halves"/> as float32s of 2^−112 times their values (float16 subnormals as
    /// float32 subnormals): <see cref="ToSingle"/> without its multiplication, which the caller folds elsewhere.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> LoadScaled(ushort* halves) =>
        ((Vector512.WidenLower(Vector256.Load((short*)halves).ToVector512Unsafe()) << 13) & Vector512.Create(unchecked((int)0x8FFFE000))).AsSingle();

    /// <summary>16 float16 values at <paramref name="halves"/> to float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Load16(ushort* halves) =>
        ToSingle(Vector512.WidenLower(Vector256.Load((short*)halves).ToVector512Unsafe()));

    /// <summary>
    /// <paramref name="count"/> (a multiple of 16) values rounded to float16, to nearest with ties to even, at
    /// <paramref name="halves"/>, 16 at a time. Magnitudes saturate at 65504, the largest finite float16, so that the
    /// cache never holds an infinity (a NaN saturates too). Normals: the float32 exponent rebiased and the mantissa
    /// rounded by adding half an ulp of float16 (less one, plus the kept lowest bit: ties to even); below 2^−14 the
    /// float16 subnormal comes from one float addition of 0.5, whose own rounding is the float16 one.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Store(float* values, ushort* halves, int count)
    {
        for (int c = 0; c < count; c += Lanes)
        {
            var x = Vector512.Load((uint*)(values + c));
            var sign = (x >> 16) & Vector512.Create(0x8000u);
            var a = Vector512.Min(x & Vector512.Create(0x7FFFFFFFu), Vector512.Create(0x477FE000u));   // ≤ 65504
            var normal = (a + Vector512.Create(unchecked((uint)((15 - 127) << 23)) + 0xFFFu) + ((a >> 13) & Vector512<uint>.One)) >> 13;
            var subnormal = (a.AsSingle() + Vector512.Create(0.5f)).AsUInt32() - Vector512.Create(0x3F000000u);
            var h = Vector512.ConditionalSelect(Vector512.LessThan(a, Vector512.Create(0x38800000u)), subnormal, normal) | sign;
            Vector512.Narrow(h, h).GetLower().Store(halves + c);
        }
    }
}

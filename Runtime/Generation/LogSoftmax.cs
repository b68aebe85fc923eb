using System.Runtime.CompilerServices;

namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// Log-softmax over one row of logits, in double precision, without allocating: the row's maximum and the log of
/// its partition function, then any entry as <c>logit − max − log Σ exp(logit − max)</c>; and the k most likely
/// entries by a k-element heap.
/// </summary>
internal static class LogSoftmax
{
    /// <summary>max + log Σ exp(x − max) over the row (−infinity entries take no mass).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double LogSumExp(ReadOnlySpan<float> row)
    {
        float max = float.NegativeInfinity;
        foreach (var x in row)
        {
            max = Math.Max(max, x);
        }

        if (float.IsNegativeInfinity(max))
        {
            return double.NegativeInfinity;
        }

        double sum = 0;
        foreach (var x in row)
        {
            sum += Math.Exp((double)x - max);
        }

        return max + Math.Log(sum);
    }

    /// <summary>The <paramref name="ids"/>.Length largest entries of <paramref name="row"/>, largest first (lower id first on ties).</summary>
    public static void TopK(ReadOnlySpan<float> row, Span<int> ids)
    {
        int k = Math.Min(ids.Length, row.Length), size = 0;
        // A min-heap (worst at the root) of the best k so far; "worse" = smaller value, or the same value and a larger id.
        for (int i = 0; i < row.Length; i++)
        {
            if (size < k)
            {
                int child = size++;
                while (child > 0)
                {
                    int parent = (child - 1) / 2;
                    if (!Worse(row, i, ids[parent]))
                    {
                        break;
                    }

                    ids[child] = ids[parent];
                    child = parent;
                }

                ids[child] = i;
            }
            else if (Worse(row, ids[0], i))
            {
                int parent = 0;
                while (true)
                {
                    int child = 2 * parent + 1;
                    if (child >= k)
                    {
                        break;
                    }

                    if (child + 1 < k && Worse(row, ids[child + 1], ids[child]))
                    {
                        child++;
                    }

                    if (!Worse(row, ids[child], i))
                    {
                        break;
                    }

                    ids[parent] = ids[child];
                    parent = child;
                }

                ids[parent] = i;
            }
        }

        // Heap order to best-first: repeatedly move the worst to the end.
        for (int end = k - 1; end > 0; end--)
        {
            (ids[0], ids[end]) = (ids[end], ids[0]);
            int parent = 0;
            while (true)
            {
                int child = 2 * parent + 1;
                if (child >= end)
                {
                    break;
                }

                if (child + 1 < end && Worse(row, ids[child + 1], ids[child]))
                {
                    child++;
                }

                if (!Worse(row, ids[child], ids[parent]))
                {
                    break;
                }

                (ids[parent], ids[child]) = (ids[child], ids[parent]);
                parent = child;
            }
        }

        static bool Worse(ReadOnlySpan<float> row, int a, int b) => row[a] < row[b] || (row[a] == row[b] && a > b);
    }
}

using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace OnnxGpt.Training;

/// <summary>
/// Small building blocks shared by the layer functions: a fused multiply-add on <see cref="Vector{T}"/> for any
/// element type, and a parallel loop that splits work into fixed chunks. Every parallel loop in the trainer gives
/// each output element to exactly one chunk and sums in a fixed order, so results do not depend on scheduling.
/// </summary>
internal static class Kernels
{
    /// <summary>Below this many multiply-adds a loop runs on the calling thread: forking costs more than it saves.</summary>
    private const long ParallelThreshold = 1 << 15;

    /// <summary>
    /// Caps the threads the loops started from the current thread use (null: all cores). Thread-static, so a test
    /// that runs the model single-threaded does not change other tests running beside it.
    /// </summary>
    public static int? MaxDegreeOfParallelism
    {
        get => t_maxDegree;
        set => t_maxDegree = value;
    }

    [ThreadStatic]
    private static int? t_maxDegree;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> MultiplyAdd<T>(Vector<T> a, Vector<T> b, Vector<T> addend)
    {
        if (typeof(T) == typeof(float))
        {
            return Vector.MultiplyAddEstimate(a.As<T, float>(), b.As<T, float>(), addend.As<T, float>()).As<float, T>();
        }

        if (typeof(T) == typeof(double))
        {
            return Vector.MultiplyAddEstimate(a.As<T, double>(), b.As<T, double>(), addend.As<T, double>()).As<double, T>();
        }

        return a * b + addend;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector<T> Load<T>(ReadOnlySpan<T> span, int offset) =>
        Vector.LoadUnsafe(ref MemoryMarshal.GetReference(span), (nuint)offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store<T>(Vector<T> value, Span<T> span, int offset) =>
        value.StoreUnsafe(ref MemoryMarshal.GetReference(span), (nuint)offset);

    /// <summary>
    /// Runs <paramref name="body"/>(start, end) over [0, <paramref name="count"/>) in contiguous chunks of at least
    /// <paramref name="grain"/> items (the last may be shorter). Work below a threshold runs inline.
    /// </summary>
    public static void For(int count, int grain, long workPerItem, Action<int, int> body)
    {
        if (count <= 0)
        {
            return;
        }

        int degree = MaxDegreeOfParallelism ?? Environment.ProcessorCount;
        if (degree <= 1 || count <= grain || count * workPerItem < ParallelThreshold)
        {
            body(0, count);
            return;
        }

        // A few chunks per core smooths out a core that another process is using.
        int chunks = Math.Min((count + grain - 1) / grain, degree * 4);
        int per = (count + chunks - 1) / chunks;
        per = (per + grain - 1) / grain * grain;
        chunks = (count + per - 1) / per;
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = degree }, i =>
        {
            int start = i * per;
            body(start, Math.Min(count, start + per));
        });
    }
}

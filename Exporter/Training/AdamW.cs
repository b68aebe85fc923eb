using System.Numerics;
using System.Runtime.CompilerServices;
using OnnxGpt.Contracts;

namespace OnnxGpt.Training;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter) over a model's flat parameter array. Weight decay follows nanoGPT: every tensor of
/// rank ≥ 2 (the linear weights <b>and</b> the token/position embeddings) decays; biases and layer-norm weights do not.
/// The moments are kept in float64 for the double model and float32 for the float model (same type as the weights).
/// </summary>
public sealed class AdamW<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly bool[] _decayMask;
    private readonly IReadOnlyList<ParameterSlot> _slots;

    public AdamW(IReadOnlyList<ParameterSlot> slots, int parameterCount, double beta1 = 0.9, double beta2 = 0.95,
        double epsilon = 1e-8, double weightDecay = 0.1)
    {
        ArgumentNullException.ThrowIfNull(slots);
        ArgumentOutOfRangeException.ThrowIfNegative(parameterCount);
        if (beta1 is < 0 or >= 1 || beta2 is < 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(beta1), $"betas must lie in [0, 1); found {beta1}, {beta2}.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(weightDecay);
        _slots = slots;
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        FirstMoment = new T[parameterCount];
        SecondMoment = new T[parameterCount];
        _decayMask = slots.Select(s => s.DecaysWeight).ToArray();
    }

    public double Beta1 { get; }

    public double Beta2 { get; }

    public double Epsilon { get; }

    public double WeightDecay { get; }

    /// <summary>Updates taken so far (for bias correction).</summary>
    public int StepCount { get; set; }

    /// <summary>Adam's m, laid out like the parameters.</summary>
    public T[] FirstMoment { get; }

    /// <summary>Adam's v, laid out like the parameters.</summary>
    public T[] SecondMoment { get; }

    /// <summary>One update: p −= lr · (m̂ / (√v̂ + ε) + wd · p) for decayed tensors, without the wd term for the rest.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Step(Span<T> parameters, ReadOnlySpan<T> gradients, double learningRate)
    {
        if (parameters.Length != FirstMoment.Length || gradients.Length != FirstMoment.Length)
        {
            throw new ArgumentException($"expected {FirstMoment.Length} parameters and gradients, found {parameters.Length} and {gradients.Length}.");
        }

        StepCount++;
        T b1 = T.CreateChecked(Beta1), b2 = T.CreateChecked(Beta2);
        T oneMinusB1 = T.One - b1, oneMinusB2 = T.One - b2;
        T correction1 = T.One / T.CreateChecked(1 - Math.Pow(Beta1, StepCount));
        T correction2 = T.One / T.CreateChecked(1 - Math.Pow(Beta2, StepCount));
        T lr = T.CreateChecked(learningRate), eps = T.CreateChecked(Epsilon), wd = T.CreateChecked(WeightDecay);
        for (int s = 0; s < _slots.Count; s++)
        {
            var slot = _slots[s];
            T decay = _decayMask[s] ? wd : T.Zero;
            var p = parameters.Slice(slot.Offset, slot.Length);
            var g = gradients.Slice(slot.Offset, slot.Length);
            var m = FirstMoment.AsSpan(slot.Offset, slot.Length);
            var v = SecondMoment.AsSpan(slot.Offset, slot.Length);
            for (int i = 0; i < p.Length; i++)
            {
                T gi = g[i];
                T mi = b1 * m[i] + oneMinusB1 * gi;
                T vi = b2 * v[i] + oneMinusB2 * gi * gi;
                m[i] = mi;
                v[i] = vi;
                p[i] -= lr * (mi * correction1 / (T.Sqrt(vi * correction2) + eps) + decay * p[i]);
            }
        }
    }

    /// <summary>The L2 norm of all gradients together, summed in double.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double GlobalNorm(ReadOnlySpan<T> gradients)
    {
        double sum = 0;
        foreach (var g in gradients)
        {
            double d = double.CreateChecked(g);
            sum += d * d;
        }

        return Math.Sqrt(sum);
    }

    /// <summary>Scales the gradients so their global norm is at most <paramref name="maxNorm"/>; returns the norm before.</summary>
    public static double ClipByGlobalNorm(Span<T> gradients, double maxNorm)
    {
        double norm = GlobalNorm(gradients);
        if (maxNorm > 0 && norm > maxNorm)
        {
            T scale = T.CreateChecked(maxNorm / (norm + 1e-6));
            foreach (ref var g in gradients)
            {
                g *= scale;
            }
        }

        return norm;
    }
}

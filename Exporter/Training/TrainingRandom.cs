using OnnxGpt.Contracts;

namespace OnnxGpt.Training;

/// <summary>
/// The trainer's random numbers: the project's generator (<see cref="DeterministicRandom"/>, xoshiro256** seeded
/// through SplitMix64) with the draws the trainer has always made from it (Lemire integers, Box–Muller normals), so
/// a seed repeats a run and the four state words can be saved and restored exactly.
/// </summary>
public sealed class TrainingRandom
{
    private readonly DeterministicRandom _core;

    public TrainingRandom(ulong seed) => _core = new DeterministicRandom(seed);

    private TrainingRandom(DeterministicRandom core) => _core = core;

    /// <summary>The generator's state (four words), for checkpoints.</summary>
    public ulong[] GetState() => _core.GetState();

    /// <summary>Restores a generator from <see cref="GetState"/>.</summary>
    public static TrainingRandom FromState(IReadOnlyList<ulong> state) => new(DeterministicRandom.FromState(state));

    public ulong NextUInt64() => _core.NextUInt64();

    /// <summary>A uniform integer in [0, <paramref name="exclusiveMax"/>) without modulo bias (Lemire's method).</summary>
    public int NextInt(int exclusiveMax)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(exclusiveMax);
        ulong bound = (ulong)exclusiveMax;
        ulong threshold = (0UL - bound) % bound;
        while (true)
        {
            ulong high = Math.BigMul(NextUInt64(), bound, out ulong low);
            if (low >= threshold)
            {
                return (int)high;
            }
        }
    }

    /// <summary>A uniform double in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => _core.NextDouble();

    /// <summary>A standard normal sample (Box–Muller, both uniforms drawn fresh each call).</summary>
    public double NextGaussian()
    {
        double u1 = 1.0 - NextDouble(); // (0, 1]
        double u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }
}

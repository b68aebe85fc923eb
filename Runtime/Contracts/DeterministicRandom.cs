using System.Numerics;
using System.Runtime.CompilerServices;
using System.Text;

namespace OnnxGpt.Contracts;

/// <summary>
/// A pseudo-random generator whose every output is fixed by this project, so that the same seed gives the same
/// numbers on every machine and .NET version (<see cref="Random"/> promises neither). The algorithm:
/// xoshiro256** (Blackman and Vigna), its 256-bit state filled from the seed by SplitMix64.
/// Uniform doubles take the top 53 bits; normal samples use Marsaglia's polar method with
/// a logarithm computed in plain double arithmetic. Changing any of this changes every seeded model: don't.
/// Not thread-safe; give each thread or tensor its own stream with <see cref="ForStream"/>.
/// </summary>
public sealed class DeterministicRandom
{
    private ulong _s0, _s1, _s2, _s3;
    private double _spare;
    private bool _hasSpare;

    /// <summary>A generator whose sequence is fixed by <paramref name="seed"/>.</summary>
    public DeterministicRandom(ulong seed)
    {
        ulong x = seed;
        _s0 = SplitMix64(ref x);
        _s1 = SplitMix64(ref x);
        _s2 = SplitMix64(ref x);
        _s3 = SplitMix64(ref x);
    }

    private DeterministicRandom(ulong s0, ulong s1, ulong s2, ulong s3) => (_s0, _s1, _s2, _s3) = (s0, s1, s2, s3);

    /// <summary>
    /// The four state words, so a checkpoint can save the generator and <see cref="FromState"/> continue it exactly.
    /// A normal value <see cref="NextNormal"/> drew in a pair and has not handed out yet is not part of the state.
    /// </summary>
    public ulong[] GetState() => [_s0, _s1, _s2, _s3];

    /// <summary>A generator continuing from <see cref="GetState"/>.</summary>
    /// <exception cref="ArgumentException">Not four words, or all zero (xoshiro's one invalid state).</exception>
    public static DeterministicRandom FromState(IReadOnlyList<ulong> state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.Count != 4 || state.All(s => s == 0))
        {
            throw new ArgumentException($"a generator state is four words, not all zero; found {state.Count} word(s).", nameof(state));
        }

        return new DeterministicRandom(state[0], state[1], state[2], state[3]);
    }

    /// <summary>
    /// An independent stream for a named purpose, e.g. one tensor (and one chunk of it): the seed is mixed with
    /// the 64-bit FNV-1a hash of the name's UTF-8 bytes and with <paramref name="index"/>.
    /// </summary>
    public static DeterministicRandom ForStream(ulong seed, string name, ulong index = 0)
    {
        ArgumentNullException.ThrowIfNull(name);
        ulong s = Mix(seed);
        s = Mix(s ^ Fnv1a64(name));
        s = Mix(s ^ index);
        return new DeterministicRandom(s);
    }

    /// <summary>64-bit FNV-1a of the UTF-8 bytes of <paramref name="text"/> (a fixed, portable string hash).</summary>
    public static ulong Fnv1a64(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        ulong hash = 0xCBF2_9CE4_8422_2325UL;
        foreach (byte b in Encoding.UTF8.GetBytes(text))
        {
            hash ^= b;
            hash *= 0x0000_0100_0000_01B3UL;
        }

        return hash;
    }

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64() => Next(ref _s0, ref _s1, ref _s2, ref _s3);

    /// <summary>One step of xoshiro256**.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Next(ref ulong s0, ref ulong s1, ref ulong s2, ref ulong s3)
    {
        ulong result = BitOperations.RotateLeft(s1 * 5, 7) * 9;
        ulong t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = BitOperations.RotateLeft(s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [0, 1) with 24 random bits.</summary>
    public float NextSingle() => (NextUInt64() >> 40) * (1.0f / (1 << 24));

    /// <summary>Uniform integer in [0, <paramref name="maxExclusive"/>), without bias (Lemire's multiply-and-reject).</summary>
    public int NextInt(int maxExclusive)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxExclusive);
        ulong range = (ulong)maxExclusive;
        ulong high = Math.BigMul(NextUInt64(), range, out ulong low);
        if (low < range)
        {
            ulong threshold = (0UL - range) % range;
            while (low < threshold)
            {
                high = Math.BigMul(NextUInt64(), range, out low);
            }
        }

        return (int)high;
    }

    /// <summary>Standard normal sample (mean 0, standard deviation 1), by Marsaglia's polar method.</summary>
    public double NextNormal()
    {
        if (_hasSpare)
        {
            _hasSpare = false;
            return _spare;
        }

        double u, v, s;
        do
        {
            u = 2.0 * NextDouble() - 1.0;
            v = 2.0 * NextDouble() - 1.0;
            s = u * u + v * v;
        }
        while (s >= 1.0 || s == 0.0);

        double factor = Math.Sqrt(-2.0 * DeterministicMath.Log(s) / s); // Math.Sqrt is correctly rounded by IEEE 754.
        _spare = v * factor;
        _hasSpare = true;
        return u * factor;
    }

    /// <summary>
    /// Fills <paramref name="destination"/> with normal samples: exactly <c>(float)(mean + std · NextNormal())</c>
    /// for each element in turn, computed pairwise on a local copy of the state for speed.
    /// </summary>
    public void FillNormal(Span<float> destination, double mean, double std)
    {
        int i = 0;
        if (_hasSpare && destination.Length > 0)
        {
            destination[i++] = (float)(mean + std * _spare);
            _hasSpare = false;
        }

        ulong s0 = _s0, s1 = _s1, s2 = _s2, s3 = _s3;
        while (i < destination.Length)
        {
            double u, v, s;
            do
            {
                u = 2.0 * ((Next(ref s0, ref s1, ref s2, ref s3) >> 11) * (1.0 / (1UL << 53))) - 1.0;
                v = 2.0 * ((Next(ref s0, ref s1, ref s2, ref s3) >> 11) * (1.0 / (1UL << 53))) - 1.0;
                s = u * u + v * v;
            }
            while (s >= 1.0 || s == 0.0);

            double factor = Math.Sqrt(-2.0 * DeterministicMath.Log(s) / s);
            destination[i++] = (float)(mean + std * (u * factor));
            if (i < destination.Length)
            {
                destination[i++] = (float)(mean + std * (v * factor));
            }
            else
            {
                _spare = v * factor;
                _hasSpare = true;
            }
        }

        (_s0, _s1, _s2, _s3) = (s0, s1, s2, s3);
    }

    /// <summary>Shuffles in place (Fisher–Yates, from the end).</summary>
    public void Shuffle<T>(Span<T> items)
    {
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    /// <summary>One step of SplitMix64 (Steele, Lea and Flood): advances <paramref name="state"/> and returns 64 mixed bits.</summary>
    public static ulong SplitMix64(ref ulong state)
    {
        state += 0x9E37_79B9_7F4A_7C15UL;
        return Mix(state);
    }

    /// <summary>SplitMix64's output function: a bijective 64-bit mixer.</summary>
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
        return z ^ (z >> 31);
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// Picks the next token from one row of logits. Deterministic for a given seed, and allocation-free per token:
/// the caller passes a scratch buffer of <see cref="ScratchLength"/> floats and reuses it. The steps and their
/// order follow Hugging Face transformers: repetition penalty over the row's previous tokens (positive logits
/// divided by the penalty, negative ones multiplied, each distinct token once), then greedy argmax (lowest id on
/// ties) or: temperature, top-k (ties with the k-th logit kept), top-p (the smallest set of most likely tokens
/// whose probability reaches p, at least one), and a draw from the renormalised distribution with
/// <see cref="DeterministicRandom"/> (xoshiro256**, the project's one generator). Top-k uses a k-element heap and top-p a histogram of the probabilities, so
/// no step sorts the whole vocabulary. Between the repetition penalty and the pick come, when set, OpenAI's additive
/// penalties over the generated tokens (<c>logit[j] −= frequency · count[j] + presence · (count[j] &gt; 0)</c>), the
/// logit bias (added), and Hugging Face's no-repeat n-gram ban (−infinity); each costs nothing when off. Not
/// thread-safe (the random state advances); one sampler per generator.
/// </summary>
public sealed class Sampler
{
    // Top-p: up to this many candidates are simply sorted; beyond, a histogram narrows the sort to one bucket.
    // 1024 buckets of an eighth of a halving each reach probabilities of 2^-128 (e^-88.7) below the top token.
    private const int SortWholeNucleusBelow = 256;
    private const int NucleusBuckets = 1024;

    private DeterministicRandom _random;
    private readonly bool _greedy;
    private readonly double _temperature;
    private readonly int _topK;
    private readonly double _topP;
    private readonly double _penalty;
    private readonly float _presence;
    private readonly float _frequency;
    private readonly int[] _biasIds;
    private readonly float[] _biasValues;
    private readonly int _ngram;
    private readonly bool _logProb;

    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (see <see cref="GenerationOptions.Validate"/>).</exception>
    public Sampler(GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        Seed = options.Seed ?? (ulong)Random.Shared.NextInt64(long.MinValue, long.MaxValue);
        _random = new DeterministicRandom(Seed);
        _greedy = options.IsGreedy;
        _temperature = options.Temperature;
        _topK = options.TopK;
        _topP = options.TopP;
        _penalty = options.RepetitionPenalty;
        _presence = (float)options.PresencePenalty;
        _frequency = (float)options.FrequencyPenalty;
        _biasIds = [.. options.LogitBias.Keys.Order()];
        _biasValues = [.. _biasIds.Select(id => (float)options.LogitBias[id])];
        _ngram = options.NoRepeatNgramSize;
        _logProb = options.TopLogProbs is not null;
    }

    /// <summary>
    /// With <see cref="GenerationOptions.TopLogProbs"/> set: the log-probability the last <c>Sample</c> gave the
    /// token it picked, under the distribution it drew from (after penalties, bias, temperature, top-k and top-p; for
    /// greedy, the log-softmax of the penalised logits). NaN when not recorded.
    /// </summary>
    public double LastLogProb { get; private set; } = double.NaN;

    /// <summary>The options this sampler was built from.</summary>
    public GenerationOptions Options { get; }

    /// <summary>The seed in use: <see cref="GenerationOptions.Seed"/>, or the one picked at random when that was null.</summary>
    public ulong Seed { get; }

    /// <summary>
    /// The random generator's state now (<see cref="DeterministicRandom.GetState"/>): saved with a conversation, it lets
    /// <see cref="RestoreRandomState"/> continue this sampler's stream exactly, in another process if need be.
    /// </summary>
    public ulong[] GetRandomState() => _random.GetState();

    /// <summary>Continues the random stream from <paramref name="state"/> (see <see cref="GetRandomState"/>) instead of <see cref="Seed"/>'s.</summary>
    /// <exception cref="ArgumentException">Not four words, or all zero.</exception>
    public void RestoreRandomState(IReadOnlyList<ulong> state) => _random = DeterministicRandom.FromState(state);

    /// <summary>Floats of scratch that <c>Sample</c> needs for a vocabulary of <paramref name="vocabularySize"/>.</summary>
    public static int ScratchLength(int vocabularySize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(vocabularySize);
        return checked(3 * vocabularySize);
    }

    /// <summary>The index of the largest logit, the lowest one on ties.</summary>
    /// <exception cref="ArgumentException">The row is empty.</exception>
    /// <exception cref="OnnxGptException">A logit is NaN.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty)
        {
            throw new ArgumentException("The logits row is empty; expected one logit per vocabulary entry.", nameof(logits));
        }

        var best = 0;
        var bestValue = float.NegativeInfinity;
        for (var i = 0; i < logits.Length; i++)
        {
            var v = logits[i];
            if (float.IsNaN(v))
            {
                throw NaNLogit(i);
            }

            if (v > bestValue)
            {
                bestValue = v;
                best = i;
            }
        }

        return best;
    }

    /// <summary>Picks the next token id for one row.</summary>
    /// <param name="logits">The row's logits over the vocabulary (V values).</param>
    /// <param name="previousTokens">The row's tokens so far (prompt and generated), for the repetition penalty.</param>
    /// <param name="scratch">At least <see cref="ScratchLength"/>(V) floats, reused between calls; its contents are overwritten.</param>
    /// <exception cref="ArgumentException">The row is empty or the scratch too short.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A previous token is outside the vocabulary.</exception>
    /// <exception cref="OnnxGptException">A logit is NaN, or every logit is -infinity.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> previousTokens, Span<float> scratch) =>
        Sample(logits, previousTokens, 0, scratch);

    /// <summary>Picks the next token id for one row whose first <paramref name="promptLength"/> previous tokens are its prompt.</summary>
    /// <param name="logits">The row's logits over the vocabulary (V values).</param>
    /// <param name="previousTokens">The row's tokens so far: the repetition penalty and the n-gram ban see them all.</param>
    /// <param name="promptLength">How many of them are the prompt: OpenAI's presence and frequency penalties count only the tokens after it.</param>
    /// <param name="scratch">At least <see cref="ScratchLength"/>(V) floats, reused between calls; its contents are overwritten.</param>
    /// <exception cref="ArgumentException">The row is empty or the scratch too short.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A previous token or a biased token is outside the vocabulary.</exception>
    /// <exception cref="OnnxGptException">A logit is NaN, or every logit is -infinity.</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> previousTokens, int promptLength, Span<float> scratch)
    {
        int certain = Weigh(logits, previousTokens, promptLength, scratch, out int n, out double total);
        if (certain >= 0)
        {
            return certain;
        }

        int v = logits.Length;
        var work = scratch[..v];
        var candidates = MemoryMarshal.Cast<float, int>(scratch.Slice(v, v));
        var target = _random.NextDouble() * total;
        var sum = 0.0;
        foreach (var id in candidates[..n])
        {
            sum += work[id];
            if (sum > target)
            {
                return Picked(id, work, total);
            }
        }

        return Picked(candidates[n - 1], work, total); // Only reachable through rounding at the very end of the distribution.
    }

    /// <summary>
    /// The distribution <c>Sample</c> draws from for this row (penalty, temperature, top-k, top-p applied),
    /// written into <paramref name="probabilities"/> (V values summing to 1, 0 outside the candidates); greedy
    /// decoding gives all of it to the argmax. For speculative decoding: a draft's proposal distribution.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void Distribution(ReadOnlySpan<float> logits, ReadOnlySpan<int> previousTokens, int promptLength, Span<float> scratch, Span<float> probabilities)
    {
        int certain = Weigh(logits, previousTokens, promptLength, scratch, out int n, out double total);
        probabilities[..logits.Length].Clear();
        if (certain >= 0)
        {
            probabilities[certain] = 1;
            return;
        }

        int v = logits.Length;
        var work = scratch[..v];
        foreach (var id in MemoryMarshal.Cast<float, int>(scratch.Slice(v, v))[..n])
        {
            probabilities[id] = (float)(work[id] / total);
        }
    }

    /// <summary>A draw from <paramref name="probabilities"/> (non-negative, summing to about 1) with this sampler's generator.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal int Draw(ReadOnlySpan<float> probabilities)
    {
        double total = 0;
        int last = 0;
        for (int i = 0; i < probabilities.Length; i++)
        {
            total += probabilities[i];
            last = probabilities[i] > 0 ? i : last;
        }

        double target = _random.NextDouble() * total, sum = 0;
        for (int i = 0; i < probabilities.Length; i++)
        {
            sum += probabilities[i];
            if (sum > target)
            {
                return i;
            }
        }

        return last;
    }

    /// <summary>
    /// Speculative decoding's accept/reject step (Leviathan et al. 2023; Chen et al. 2023), which keeps this sampler's
    /// distribution p exactly: a draft proposed <paramref name="draftToken"/> from its distribution q
    /// (<paramref name="draftProbabilities"/>; empty: q puts all its mass on the token, as prompt lookup does). The
    /// token is kept with probability min(1, p(x) / q(x)); otherwise the result is drawn from max(0, p − q),
    /// renormalised. Greedy decoding returns the argmax (which accepts the draft exactly when they are equal).
    /// Returns the token picked: <paramref name="draftToken"/> when accepted.
    /// </summary>
    /// <param name="logits">The row's logits at the draft token's position.</param>
    /// <param name="previousTokens">The row's tokens before that position.</param>
    /// <param name="promptLength">How many of them are the prompt (as for <see cref="Sample(ReadOnlySpan{float}, ReadOnlySpan{int}, int, Span{float})"/>).</param>
    /// <param name="scratch">As for <c>Sample</c>.</param>
    /// <param name="draftToken">The draft's token.</param>
    /// <param name="draftProbabilities">q over the vocabulary, or empty for a draft that is certain.</param>
    /// <param name="probabilities">V floats of working space (p).</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal int Verify(ReadOnlySpan<float> logits, ReadOnlySpan<int> previousTokens, int promptLength, Span<float> scratch, int draftToken,
        ReadOnlySpan<float> draftProbabilities, Span<float> probabilities)
    {
        int certain = Weigh(logits, previousTokens, promptLength, scratch, out int n, out double total);
        if (certain >= 0)
        {
            return certain;
        }

        int v = logits.Length;
        var work = scratch[..v];
        var candidates = MemoryMarshal.Cast<float, int>(scratch.Slice(v, v))[..n];
        var p = probabilities[..v];
        p.Clear();
        foreach (var id in candidates)
        {
            p[id] = (float)(work[id] / total);
        }

        bool point = draftProbabilities.IsEmpty;
        double pDraft = p[draftToken], qDraft = point ? 1.0 : draftProbabilities[draftToken];
        if (qDraft > 0 && _random.NextDouble() * qDraft < pDraft)
        {
            return Picked(draftToken, p, 1);
        }

        // Rejected: the residual max(0, p - q), which is 0 outside p's candidates.
        double residual = 0;
        foreach (var id in candidates)
        {
            residual += Residual(p, draftProbabilities, draftToken, id);
        }

        if (!(residual > 0))
        {
            int drawn = Draw(p);   // p and q agree to rounding: p itself
            return Picked(drawn, p, 1);
        }

        double target = _random.NextDouble() * residual, sum = 0;
        int lastPositive = candidates[^1];
        foreach (var id in candidates)
        {
            double r = Residual(p, draftProbabilities, draftToken, id);
            if (r > 0)
            {
                lastPositive = id;
                sum += r;
                if (sum > target)
                {
                    return Picked(id, p, 1);
                }
            }
        }

        return Picked(lastPositive, p, 1);

        static double Residual(ReadOnlySpan<float> p, ReadOnlySpan<float> q, int draft, int id) =>
            q.IsEmpty ? (id == draft ? 0 : p[id]) : Math.Max(0.0, (double)p[id] - q[id]);
    }

    /// <summary>
    /// Everything before the draw: checks, the penalties, the bias and the n-gram ban, then greedy (returns the argmax) or the candidates
    /// after top-k, temperature and top-p, compacted at the front of the scratch's second third, their unnormalised
    /// probabilities in its first third (<paramref name="n"/> of them, summing to <paramref name="total"/>). Returns
    /// a token that is certain (greedy, or a logit of +infinity), else −1.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private int Weigh(ReadOnlySpan<float> logits, ReadOnlySpan<int> previousTokens, int promptLength, Span<float> scratch, out int n, out double total)
    {
        n = 0;
        total = 0;
        var v = logits.Length;
        if (v == 0)
        {
            throw new ArgumentException("The logits row is empty; expected one logit per vocabulary entry.", nameof(logits));
        }

        if (scratch.Length < 3L * v)
        {
            throw new ArgumentException($"The scratch buffer has {scratch.Length} floats; expected at least {3L * v} (Sampler.ScratchLength({v})).", nameof(scratch));
        }

        var work = scratch[..v];
        logits.CopyTo(work);
        if (_penalty != 1)
        {
            ApplyRepetitionPenalty(logits, previousTokens, work, _penalty);
        }

        if (_presence != 0 || _frequency != 0)
        {
            ApplyOpenAiPenalties(work, previousTokens[Math.Clamp(promptLength, 0, previousTokens.Length)..],
                MemoryMarshal.Cast<float, int>(scratch.Slice(v, v)), _presence, _frequency);
        }

        for (int i = 0; i < _biasIds.Length; i++)
        {
            int id = _biasIds[i];
            if ((uint)id >= (uint)v)
            {
                throw new ArgumentOutOfRangeException(nameof(logits), id, $"LogitBias names token {id}, outside the vocabulary of {v} tokens.");
            }

            work[id] += _biasValues[i];
        }

        if (_ngram > 0)
        {
            BanRepeatedNgrams(work, previousTokens, _ngram);
        }

        if (_greedy)
        {
            int best = ArgMax(work);
            if (_logProb)
            {
                LastLogProb = LogSoftmaxAt(work, best);
            }

            return best;
        }

        var candidates = MemoryMarshal.Cast<float, int>(scratch.Slice(v, v));
        var keys = scratch.Slice(2 * v, v);

        // The candidates: every token whose logit is not -infinity.
        var max = float.NegativeInfinity;
        for (var i = 0; i < v; i++)
        {
            var x = work[i];
            if (float.IsNaN(x))
            {
                throw NaNLogit(i);
            }

            if (x == float.PositiveInfinity)
            {
                LastLogProb = 0;
                return i; // It carries all the probability; the lowest such id, as greedy would pick.
            }

            if (x == float.NegativeInfinity)
            {
                continue;
            }

            max = Math.Max(max, x);
            candidates[n++] = i;
        }

        if (n == 0)
        {
            throw new OnnxGptException($"Every logit of the row ({v} tokens) is -infinity after masking; expected at least one finite logit.", OnnxGptErrorKind.ModelOutput);
        }

        // Top-k on the logits themselves: dividing by a positive temperature keeps their order, and comparing before
        // dividing keeps ties from appearing where rounding would make them.
        if (_topK > 0 && _topK < n)
        {
            n = KeepTopK(work, candidates[..n], MemoryMarshal.Cast<float, int>(keys), _topK);
        }

        // Temperature, relative to the largest logit and in double precision: (logit - max) / T is at most 0 and never
        // overflows, however small T is (1e-40 used to overflow to +infinity for every positive logit, and the lowest
        // such id won: token 0 again and again). The largest logit gets probability 1, so as T goes to 0 this tends
        // to greedy, and as T grows it tends to uniform. From here on work[id] holds exp((logit - max) / T), the
        // unnormalised probability, in (0, 1] or 0 on underflow.
        foreach (var id in candidates[..n])
        {
            var e = (float)Math.Exp(((double)work[id] - max) / _temperature);
            work[id] = e;
            total += e;
        }

        if (_topP < 1 && n > 1)
        {
            n = KeepNucleus(work, candidates[..n], keys, _topP * total);
            total = 0.0;
            foreach (var id in candidates[..n])
            {
                total += work[id]; // In the order the draw below walks them.
            }
        }

        return -1;
    }

    /// <summary>The picked token, with its log-probability in the distribution drawn from when asked for.</summary>
    private int Picked(int id, ReadOnlySpan<float> probabilities, double total)
    {
        if (_logProb)
        {
            LastLogProb = Math.Log(probabilities[id] / total);
        }

        return id;
    }

    /// <summary>log softmax(values)[index] in double precision (−infinity values take no mass).</summary>
    internal static double LogSoftmaxAt(ReadOnlySpan<float> values, int index)
    {
        float max = float.NegativeInfinity;
        foreach (var x in values)
        {
            max = Math.Max(max, x);
        }

        double sum = 0;
        foreach (var x in values)
        {
            sum += Math.Exp((double)x - max);
        }

        return (double)values[index] - max - Math.Log(sum);
    }

    /// <summary>
    /// OpenAI's penalties, as its API reference writes them: <c>logit[j] −= count[j] · frequency + (count[j] &gt; 0) · presence</c>,
    /// count[j] being how often token j occurs in <paramref name="generated"/>. <paramref name="marks"/> (V ints) is
    /// scratch: only the entries of the generated tokens are touched, so the cost is in the generated length, not the vocabulary.
    /// </summary>
    internal static void ApplyOpenAiPenalties(Span<float> work, ReadOnlySpan<int> generated, Span<int> marks, float presence, float frequency)
    {
        foreach (int token in generated)
        {
            if ((uint)token >= (uint)work.Length)
            {
                throw new ArgumentOutOfRangeException(nameof(generated), token, $"Previous token {token} is outside the vocabulary of {work.Length} logits.");
            }

            marks[token] = 0;
        }

        foreach (int token in generated)
        {
            if (marks[token] == 0)
            {
                marks[token] = 1;
                work[token] -= presence;
            }

            work[token] -= frequency;
        }
    }

    /// <summary>
    /// Hugging Face's no-repeat n-gram rule: every token that follows an earlier occurrence of the last n − 1 tokens
    /// gets −infinity (with n = 1, every token already in the sequence). Nothing is banned before the sequence has n − 1 tokens.
    /// </summary>
    internal static void BanRepeatedNgrams(Span<float> work, ReadOnlySpan<int> tokens, int n)
    {
        int length = tokens.Length;
        if (length + 1 < n)
        {
            return;
        }

        var tail = tokens[(length - (n - 1))..];
        for (int start = 0; start + n <= length; start++)
        {
            if (tokens.Slice(start, n - 1).SequenceEqual(tail))
            {
                int banned = tokens[start + n - 1];
                if ((uint)banned < (uint)work.Length)
                {
                    work[banned] = float.NegativeInfinity;
                }
            }
        }
    }

    /// <summary>
    /// Hugging Face's repetition penalty on <paramref name="work"/>, computed from the original logits so a token seen
    /// twice is penalised once. Computed in double and saturated to the float range, so an extreme penalty (1e-300 or
    /// 1e300, both accepted) never turns a logit into infinity or NaN (0 / tiny was NaN).
    /// </summary>
    internal static void ApplyRepetitionPenalty(ReadOnlySpan<float> logits, ReadOnlySpan<int> previousTokens, Span<float> work, double penalty)
    {
        foreach (var token in previousTokens)
        {
            if ((uint)token >= (uint)logits.Length)
            {
                throw new ArgumentOutOfRangeException(nameof(previousTokens), token, $"Previous token {token} is outside the vocabulary of {logits.Length} logits.");
            }

            double x = logits[token];
            if (!double.IsFinite(x))
            {
                continue; // -infinity stays masked; +infinity and NaN are left for the checks that follow.
            }

            work[token] = (float)Math.Clamp(x < 0 ? x * penalty : x / penalty, -float.MaxValue, float.MaxValue);
        }
    }

    /// <summary>
    /// Keeps the candidates whose value is at least the k-th largest (so ties with the k-th stay, as in Hugging
    /// Face's top-k), compacted to the front in their original order; returns how many. One pass with a min-heap
    /// of the k best so far in <paramref name="heapSpace"/>, then one pass to compact.
    /// </summary>
    internal static int KeepTopK(ReadOnlySpan<float> values, Span<int> candidates, Span<int> heapSpace, int k)
    {
        var heap = heapSpace[..k];
        var size = 0;
        foreach (var id in candidates)
        {
            var x = values[id];
            if (size < k)
            {
                // Sift up.
                var child = size++;
                while (child > 0)
                {
                    var parent = (child - 1) / 2;
                    if (values[heap[parent]] <= x)
                    {
                        break;
                    }

                    heap[child] = heap[parent];
                    child = parent;
                }

                heap[child] = id;
            }
            else if (x > values[heap[0]])
            {
                // Replace the smallest and sift down.
                var parent = 0;
                while (true)
                {
                    var child = 2 * parent + 1;
                    if (child >= k)
                    {
                        break;
                    }

                    if (child + 1 < k && values[heap[child + 1]] < values[heap[child]])
                    {
                        child++;
                    }

                    if (values[heap[child]] >= x)
                    {
                        break;
                    }

                    heap[parent] = heap[child];
                    parent = child;
                }

                heap[parent] = id;
            }
        }

        var threshold = values[heap[0]];
        var kept = 0;
        foreach (var id in candidates)
        {
            if (values[id] >= threshold)
            {
                candidates[kept++] = id;
            }
        }

        return kept;
    }

    /// <summary>
    /// Moves the nucleus to the front of <paramref name="candidates"/> and returns its size: the smallest set of
    /// most likely candidates whose mass (sum of <paramref name="probabilities"/>) reaches
    /// <paramref name="massToReach"/>, at least one. Small sets are sorted; for larger ones a histogram over the
    /// probabilities' float exponents (a logarithmic scale, eight buckets per halving) finds the one bucket where
    /// the mass crosses the threshold, and only that bucket is sorted.
    /// </summary>
    internal static int KeepNucleus(ReadOnlySpan<float> probabilities, Span<int> candidates, Span<float> keys, double massToReach)
    {
        var n = candidates.Length;
        if (n <= SortWholeNucleusBelow)
        {
            SortDescending(probabilities, candidates, keys);
            return CountReaching(probabilities, candidates, 0.0, massToReach);
        }

        Span<double> bucketMass = stackalloc double[NucleusBuckets];
        bucketMass.Clear();
        foreach (var id in candidates)
        {
            bucketMass[Bucket(probabilities[id])] += probabilities[id];
        }

        var crossing = NucleusBuckets - 1;
        var above = 0.0;
        for (var b = 0; b < NucleusBuckets; b++)
        {
            if (above + bucketMass[b] >= massToReach)
            {
                crossing = b;
                break;
            }

            above += bucketMass[b];
        }

        // One three-way pass: candidates above the crossing bucket to the front, those below to the back.
        int front = 0, j = 0, end = n;
        while (j < end)
        {
            var bucket = Bucket(probabilities[candidates[j]]);
            if (bucket < crossing)
            {
                (candidates[front], candidates[j]) = (candidates[j], candidates[front]);
                front++;
                j++;
            }
            else if (bucket > crossing)
            {
                end--;
                (candidates[end], candidates[j]) = (candidates[j], candidates[end]);
            }
            else
            {
                j++;
            }
        }

        var boundary = candidates[front..end];
        SortDescending(probabilities, boundary, keys);
        return front + CountReaching(probabilities, boundary, above, massToReach);
    }

    /// <summary>
    /// Histogram bucket of a probability in [0, 1]: the bit pattern of a non-negative float grows with its value,
    /// so the distance below 1.0f in exponent and top three mantissa bits orders buckets from most to least likely.
    /// </summary>
    private static int Bucket(float probability) =>
        (int)Math.Min((uint)(BitConverter.SingleToInt32Bits(1f) - BitConverter.SingleToInt32Bits(probability)) >> 20, NucleusBuckets - 1);

    /// <summary>How many of the (descending) <paramref name="ids"/> it takes for the mass to reach the target; at least one.</summary>
    private static int CountReaching(ReadOnlySpan<float> probabilities, ReadOnlySpan<int> ids, double mass, double massToReach)
    {
        for (var j = 0; j < ids.Length; j++)
        {
            mass += probabilities[ids[j]];
            if (mass >= massToReach)
            {
                return j + 1;
            }
        }

        return Math.Max(ids.Length, 1);
    }

    /// <summary>Sorts ids by value, largest first (ties in a fixed but unspecified order).</summary>
    private static void SortDescending(ReadOnlySpan<float> values, Span<int> ids, Span<float> keys)
    {
        var k = keys[..ids.Length];
        for (var j = 0; j < ids.Length; j++)
        {
            k[j] = -values[ids[j]];
        }

        k.Sort(ids);
    }

    private static OnnxGptException NaNLogit(int index) =>
        new($"Logit {index} of the row is NaN; the model produced invalid output (check the model's weights).", OnnxGptErrorKind.ModelOutput);
}

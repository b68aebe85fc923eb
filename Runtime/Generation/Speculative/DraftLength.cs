using System.Runtime.CompilerServices;
namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// Chooses k, the draft tokens of the next verifying step, from what it measures as the sequence decodes: the
/// acceptance rate α (each draft token accepted with probability α, independently: the standard model), the time of
/// a plain one-token step v₀, of a verifying step of k drafts v₀(1 + βk), and of one draft token c·v₀. A step of k
/// drafts then yields (1 − α^(k+1)) / (1 − α) tokens in v₀(1 + (β + c)k), against one token in v₀ without a draft; k
/// is the one that yields the most tokens per unit of time, 0 (plain decoding) where none beats 1. Each estimate is
/// an exponential average, so k follows text that turns repetitive or free, and a machine whose speed drifts.
/// <para>
/// Why measure rather than fix k per model: the costs differ by model and machine (a float32 target verifies 4 drafts
/// for 1.1 steps, an int4 target for 1.7; an int4 draft costs a quarter to a third of a float32 step, a lookup
/// nothing), and α by text (prompt lookup is near 1 on a quotation and 0 on free text). A plain step is timed at the
/// start and every <see cref="PlainEvery"/> steps to keep v₀ current; while k is 0, every <see cref="ProbeEvery"/>-th
/// step tries k = 1 to keep α current.
/// </para>
/// </summary>
internal sealed class DraftLength
{
    /// <summary>A plain step every this many steps, to keep measuring v₀.</summary>
    public const int PlainEvery = 64;

    /// <summary>While drafting does not pay, a one-token draft every this many steps, to keep measuring α.</summary>
    public const int ProbeEvery = 16;

    private const double Keep = 0.85;

    private readonly int _fixed;
    private readonly int _max;
    private double _accepted = 1.5;   // prior: α = 0.5, worth two drafts
    private double _tested = 3;
    private double _plain;            // v₀ in ticks (0: not measured yet)
    private double _slope;            // β
    private double _draftCost;        // c
    private bool _slopeKnown;
    private bool _draftCostKnown;
    private int _steps;
    private int _idle;

    /// <param name="fixedLength">A fixed k (0: adaptive).</param>
    /// <param name="max">The largest k.</param>
    /// <param name="draftCostPrior">c before it is measured (0 for prompt lookup).</param>
    public DraftLength(int fixedLength, int max, double draftCostPrior)
    {
        _fixed = fixedLength;
        _max = max;
        _draftCost = draftCostPrior;
        _slope = 0.1;
    }

    /// <summary>The acceptance rate estimated now.</summary>
    public double Alpha => Math.Clamp(_accepted / _tested, 0, 0.999);

    /// <summary>k for the next step, at most <paramref name="budget"/>; 0: a plain step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Choose(int budget)
    {
        _steps++;
        if (budget <= 0)
        {
            return 0;
        }

        if (_fixed > 0)
        {
            return Math.Min(_fixed, budget);
        }

        if (_plain <= 0 || _steps % PlainEvery == 0)
        {
            return 0;   // time a plain step
        }

        double alpha = Alpha, best = 1;
        int choice = 0;
        double yield = 1, power = alpha;
        for (int k = 1; k <= Math.Min(_max, budget); k++)
        {
            yield += power;             // 1 + α + … + α^k
            power *= alpha;
            double rate = yield / (1 + (_slope + _draftCost) * k);
            if (rate > best * 1.0001)
            {
                (best, choice) = (rate, k);
            }
        }

        if (choice == 0 && ++_idle >= ProbeEvery)
        {
            _idle = 0;
            return 1;
        }

        return choice;
    }

    /// <summary>A plain one-token step took <paramref name="ticks"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void ObservePlain(long ticks) => _plain = _plain <= 0 ? ticks : Keep * _plain + (1 - Keep) * ticks;

    /// <summary>
    /// A verifying step of <paramref name="drafted"/> draft tokens, of which the first <paramref name="accepted"/> were
    /// accepted (<paramref name="rejected"/>: then one was refused), took <paramref name="draftTicks"/> to draft and
    /// <paramref name="verifyTicks"/> to verify.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void ObserveRound(int drafted, int accepted, bool rejected, long draftTicks, long verifyTicks)
    {
        _accepted = Keep * _accepted + accepted;
        _tested = Keep * _tested + accepted + (rejected ? 1 : 0);
        if (_plain <= 0 || drafted == 0)
        {
            return;
        }

        double slope = Math.Max(0, (verifyTicks / _plain - 1) / drafted);
        double cost = Math.Max(0, draftTicks / _plain / drafted);
        _slope = _slopeKnown ? Keep * _slope + (1 - Keep) * slope : slope;
        _draftCost = _draftCostKnown ? Keep * _draftCost + (1 - Keep) * cost : cost;
        _slopeKnown = _draftCostKnown = true;
    }
}

using System.Runtime.CompilerServices;
namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// Chooses k, the draft tokens of the next verifying step, from what it measures as the sequence decodes: for each
/// draft position j, how often its token is accepted when the j − 1 before it were (hⱼ); the time of a plain one-token
/// step v₀, of a verifying step of k drafts v₀(1 + βk), and of one draft token c·v₀. A step of k drafts then yields
/// 1 + h₁ + h₁h₂ + … + h₁⋯hₖ tokens in v₀(1 + (β + c)k), against one token in v₀ without a draft; k is the one that
/// yields the most tokens per unit of time, 0 (plain decoding) where none beats 1. Each estimate is an exponential
/// average, so k follows text that turns repetitive or free, and a machine whose speed drifts.
/// <para>
/// Why a rate per position rather than one acceptance rate α with independent tokens (yield (1 − α^(k+1)) / (1 − α)):
/// acceptances come in runs. A draft that has the first token right is in step with the model (a quotation, a loop,
/// an easy stretch) and likely to have the next ones right too; one α averages those runs with the misses and
/// undervalues long drafts. Measured on GPT-2 124M with its int4 export drafting (2 threads): with one α the choice
/// stayed at 1–2 tokens and plain steps (1.11×), while fixed k = 4 gave 1.65× (k = 2: 1.41×, k = 8: 1.25×). A
/// position measured in few rounds leans towards halfway between the rate of the one before it and 1, so that k
/// tries longer drafts where the first tokens are accepted, and the measurement then says how far they pay.
/// </para>
/// <para>
/// Why measure rather than fix k per model: the costs differ by model and machine (a float32 target verifies 4 drafts
/// for 1.1 steps, an int4 target for 1.7; an int4 draft costs a third of a float32 step, a lookup nothing), and the
/// acceptance by text (prompt lookup is near 1 on a quotation and 0 on free text). A plain step is timed at the start
/// and every <see cref="PlainEvery"/> steps to keep v₀ current; while k is 0, every <see cref="ProbeEvery"/>-th step
/// tries k = 1 to keep h₁ current.
/// </para>
/// </summary>
internal sealed class DraftLength
{
    /// <summary>A plain step every this many steps, to keep measuring v₀.</summary>
    public const int PlainEvery = 64;

    /// <summary>While drafting does not pay, a one-token draft every this many steps, to keep measuring h₁.</summary>
    public const int ProbeEvery = 8;

    private const double Keep = 0.85;
    private const double Prior = 0.5;        // h₁ before anything is measured: worth a draft or two
    private const double PriorWeight = 2;    // in rounds: one refusal at a position tried once does not condemn it
    private const double Optimism = 0.5;     // the prior of hⱼ₊₁ is hⱼ + (1 − hⱼ) · this
    private const double Fade = 0.9;         // per round, for the positions a round did not draft

    private readonly int _fixed;
    private readonly int _max;
    private readonly double[] _accepted;     // per position j (index j − 1): decayed count of accepted tokens ...
    private readonly double[] _tested;       // ... of tokens verified with every draft before them accepted
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
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(max);
        _fixed = fixedLength;
        _max = max;
        _accepted = new double[max];
        _tested = new double[max];
        _draftCost = draftCostPrior;
        _slope = 0.1;
    }

    /// <summary>The rate at which the first draft token is accepted, estimated now.</summary>
    public double Alpha => Rate(0, Prior);

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

        double best = 1, yield = 1, reach = 1, rate = Prior;
        int choice = 0;
        for (int k = 1; k <= Math.Min(_max, budget); k++)
        {
            // A position with few rounds leans towards halfway from the rate of the one before to 1 (runs: see above).
            rate = Rate(k - 1, k == 1 ? Prior : rate + (1 - rate) * Optimism);
            reach *= rate;              // the chance that drafts 1..k are all accepted
            yield += reach;             // 1 + h₁ + h₁h₂ + … + h₁⋯hₖ
            double perTime = yield / (1 + (_slope + _draftCost) * k);
            if (perTime > best * 1.0001)
            {
                (best, choice) = (perTime, k);
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
        // Positions 1..accepted were tested and accepted; the next one, when refused, was tested and not accepted.
        int tested = Math.Min(_max, accepted + (rejected ? 1 : 0));
        for (int j = 0; j < tested; j++)
        {
            _accepted[j] = Keep * _accepted[j] + (j < accepted ? 1 : 0);
            _tested[j] = Keep * _tested[j] + 1;
        }

        // Positions past the draft fade slowly: what k = 8 met long ago should not keep k from growing back to 8.
        for (int j = Math.Min(_max, drafted); j < _max; j++)
        {
            _accepted[j] *= Fade;
            _tested[j] *= Fade;
        }

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

    /// <summary>hⱼ for position <paramref name="index"/> + 1: its measured rate, drawn towards <paramref name="prior"/> while it has few rounds.</summary>
    private double Rate(int index, double prior) =>
        Math.Clamp((_accepted[index] + PriorWeight * prior) / (_tested[index] + PriorWeight), 0, 0.999);
}

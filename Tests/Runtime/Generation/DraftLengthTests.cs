using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>
/// The adaptive choice of k against simulated drafts with known acceptance and costs (a plain step 1,000 ticks, a
/// verifying step 1,000 + 40 per draft token, a draft token 300 or nothing), each run driven by the choices it makes:
/// the k it settles on is the one that yields the most tokens per unit of time by the arithmetic in the test.
/// </summary>
[TestClass]
public sealed class DraftLengthTests
{
    private const long Plain = 1000;

    [TestMethod]
    public void FreeDraftsThatAreAlwaysAcceptedGrowToTheLargestK()
    {
        var chosen = Simulate(new DraftLength(0, 8, 0), 0, 200, (k, _) => k);
        Assert.AreEqual(8, chosen[^1], $"choices {string.Join(",", chosen)}");
    }

    [TestMethod]
    public void DraftsThatAreNeverAcceptedFallToPlainStepsAndAProbe()
    {
        var chosen = Simulate(new DraftLength(0, 8, 0.3), 300, 200, (_, _) => 0);
        var last = chosen[^96..];
        Assert.IsTrue(last.All(k => k <= 1), $"choices {string.Join(",", last)}");
        int probes = last.Count(k => k == 1);
        // A probe every ProbeEvery-th step that does not time a plain step: about 96 / 8.
        Assert.IsInRange(96 / DraftLength.ProbeEvery - 2, 96 / DraftLength.ProbeEvery + 1, probes, $"choices {string.Join(",", last)}");
    }

    [TestMethod]
    public void AcceptanceInRunsIsWorthLongDrafts()
    {
        // Three rounds in five the draft is in step and every token is accepted, else its first is refused: h₁ = 0.6
        // and h₂.. = 1, so k drafts yield 1 + 0.6k tokens in 1 + 0.34k steps' time, most at k = 8 (1.56 per step
        // against 1.19 at k = 1). One acceptance rate for every position, measured at k = 2 (1.2 / 1.6 = 0.75), would
        // make k = 2 look best (1.37 per step against 1.35 at k = 3) and stay there.
        var chosen = Simulate(new DraftLength(0, 8, 0.3), 300, 400, (k, round) => round % 5 < 3 ? k : 0);
        var last = chosen[^100..].Where(k => k > 0).ToArray();
        Assert.IsGreaterThanOrEqualTo(6.0, last.Average(), $"choices {string.Join(",", last)}");
    }

    [TestMethod]
    public void ADraftRightForThreeTokensSettlesOnThree()
    {
        // Tokens 1–3 always accepted, the 4th always refused: k = 3 yields 4 tokens in 2.02 steps' time (1.98 per
        // step), k = 4 the same 4 in 2.36 (1.69), k = 2 3 in 1.68 (1.79).
        var chosen = Simulate(new DraftLength(0, 8, 0.3), 300, 400, (k, _) => Math.Min(k, 3));
        var last = chosen[^100..].Where(k => k > 0).ToArray();
        int mode = last.GroupBy(k => k).MaxBy(g => g.Count())!.Key;
        Assert.AreEqual(3, mode, $"choices {string.Join(",", last)}");
    }

    [TestMethod]
    public void AFixedKIsKeptWithinTheBudget()
    {
        var length = new DraftLength(5, 5, 0.3);
        Assert.AreEqual(5, length.Choose(10));
        Assert.AreEqual(2, length.Choose(2));
        Assert.AreEqual(0, length.Choose(0));
    }

    /// <summary>
    /// Runs <paramref name="steps"/> choices: k = 0 times a plain step, else a round whose first
    /// <paramref name="accepted"/>(k, round) drafts are accepted (the next refused, if any). Returns the k chosen at each step.
    /// </summary>
    private static int[] Simulate(DraftLength length, long draftTicks, int steps, Func<int, int, int> accepted)
    {
        var chosen = new int[steps];
        int round = 0;
        for (int i = 0; i < steps; i++)
        {
            int k = length.Choose(100);
            chosen[i] = k;
            if (k == 0)
            {
                length.ObservePlain(Plain);
                continue;
            }

            int a = Math.Min(k, accepted(k, round++));
            length.ObserveRound(k, a, a < k, draftTicks * k, Plain + 40 * k);
        }

        return chosen;
    }
}

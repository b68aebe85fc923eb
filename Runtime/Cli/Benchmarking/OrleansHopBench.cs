using System.Diagnostics;
using OnnxGpt.Cli.Serving;
using OnnxGpt.Orleans.Client;
using OnnxGpt.Orleans.Conversations;
using OnnxGpt.Runtime.Batching;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;

namespace OnnxGpt.Cli.Benchmarking;

/// <summary>
/// What the Orleans hop costs (<c>onnxgpt bench orleans</c>): the same greedy request, alternately on the batch engine
/// in this process and as a conversation turn through a cluster client that reaches a silo (in this process, on
/// another batch engine over the same model) over loopback TCP: Orleans' serialization, messaging, the grain's
/// placement and activation, its per-turn state write (in-memory storage) and the streamed tokens. Each turn is a new
/// conversation whose prompt starts with a character of its own (the engines reuse cached prefixes), so both sides run
/// the whole prompt: a request that found cached tokens stops the benchmark. Medians of per-request latency, time to the first token, and
/// the gap between tokens after the first; the differences are the hop's cost.
/// </summary>
internal static class OrleansHopBench
{
    public static void Run(GptModel model, int[] prompt, int newTokens, int reps, TextWriter stdout)
    {
        var options = new GenerationOptions { DoSample = false, MaxNewTokens = newTokens, StopStrings = [] };
        // The silo's engine has these settings too (two slots, chunks of 128, finished conversations kept until released).
        using var engine = BatchEngine.Start(model, new BatchEngineOptions { Slots = 2, PrefillChunkTokens = 128, MaxIdleConversations = 2 });
        int[] ports = SampleStatistics.FreePorts(3);
        var settings = new ClusterSettings { SiloPort = ports[0], GatewayPort = ports[1], GatewayPorts = [ports[1]], ClusterId = "bench-" + ports[2] };
        var silo = ClusterHost.StartSiloAsync(model, slots: 2, prefillChunk: 128, settings, stdout, CancellationToken.None).GetAwaiter().GetResult();
        try
        {
            var client = ClusterHost.StartClientAsync(settings with { IsSilo = false }, stdout, CancellationToken.None).GetAwaiter().GetResult();
            try
            {
                var conversations = new ConversationClient(client.Grains);
                var tokenizer = model.Tokenizer!;
                var local = new List<Timing>();
                var hop = new List<Timing>();
                                for (int i = -2; i < reps; i++)   // two warm-up rounds, not counted
                {
                    // A first token of this round's own, found by encoding: no cached row shares the prompt's start.
                    int[] unique = [.. tokenizer.Encode(((char)('A' + (i + 2) % 26)).ToString()), .. prompt];
                    var turn = new ConversationTurn { Text = tokenizer.Decode(unique), History = TurnHistory.Full, Options = new GenerationOverrides { Greedy = true, MaxNewTokens = newTokens } };
                    var a = Local(engine, unique, options);
                    var b = Cluster(conversations, $"bench-{Guid.NewGuid():N}", turn);
                    if (a.Tokens != b.Tokens)
                    {
                        throw new OnnxGptException($"bench orleans: the engine gave {a.Tokens} tokens and the cluster {b.Tokens} for the same greedy request; the comparison would be unfair.");
                    }

                    if (i >= 0)
                    {
                        local.Add(a);
                        hop.Add(b);
                    }
                }

                Report(stdout, local, hop, newTokens, reps);
            }
            finally
            {
                client.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        }
        finally
        {
            silo.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private static Timing Local(BatchEngine engine, int[] prompt, GenerationOptions options)
    {
        BatchRequest? request = null;
        var timing = Measure(async mark =>
        {
            request = engine.Submit(prompt, options);
            await foreach (var _ in request.ReadTokensAsync())
            {
                mark();
            }
        });
        NoReuse(request!.ReusedTokens, "the in-process engine");
        engine.ReleaseConversation(request);
        return timing;
    }

    private static Timing Cluster(ConversationClient conversations, string id, ConversationTurn turn) => Measure(async mark =>
    {
        await foreach (var update in conversations.ContinueAsync(id, turn))
        {
            if (update.Kind == ConversationUpdateKind.Token)
            {
                mark();
            }
            else if (update.Usage is { } usage)
            {
                NoReuse(usage.ReusedTokens, "the silo's engine");
            }
        }

        await conversations.ClearAsync(id);   // not timed below: the request ended with its completion
    });

    private static void NoReuse(int reused, string where)
    {
        if (reused != 0)
        {
            throw new OnnxGptException($"bench orleans: {where} found {reused} of a request's prompt tokens cached; every request must run its whole prompt for a fair comparison.");
        }
    }

    /// <summary>Times one request: when it began, each token, and its end (the last token or completion seen).</summary>
    private static Timing Measure(Func<Action, Task> run)
    {
        var clock = Stopwatch.StartNew();
        var marks = new List<double>();
        run(() => marks.Add(clock.Elapsed.TotalMilliseconds)).GetAwaiter().GetResult();
        double end = marks.Count > 0 ? marks[^1] : clock.Elapsed.TotalMilliseconds;
        double gap = marks.Count > 1 ? (marks[^1] - marks[0]) / (marks.Count - 1) : 0;
        return new Timing(marks.Count, marks.Count > 0 ? marks[0] : end, gap, end);
    }

    private static void Report(TextWriter stdout, List<Timing> local, List<Timing> hop, int newTokens, int reps)
    {
        double M(List<Timing> t, Func<Timing, double> f) => Median([.. t.Select(f)]);
        stdout.WriteLine($"{reps} requests each way, alternating; {newTokens} greedy tokens per request; medians");
        stdout.WriteLine("| path | first token ms | per token ms (after the first) | request ms (to the last token) |");
        stdout.WriteLine("|---|---|---|---|");
        stdout.WriteLine($"| batch engine, in process | {M(local, t => t.FirstMs):F2} | {M(local, t => t.GapMs):F3} | {M(local, t => t.EndMs):F2} |");
        stdout.WriteLine($"| Orleans client -> silo (loopback TCP) | {M(hop, t => t.FirstMs):F2} | {M(hop, t => t.GapMs):F3} | {M(hop, t => t.EndMs):F2} |");
        var paired = local.Zip(hop).ToList();
        stdout.WriteLine($"hop overhead (median of paired differences): first token +{Median([.. paired.Select(p => p.Second.FirstMs - p.First.FirstMs)]):F2} ms, " +
            $"per token +{Median([.. paired.Select(p => p.Second.GapMs - p.First.GapMs)]):F3} ms, per request +{Median([.. paired.Select(p => p.Second.EndMs - p.First.EndMs)]):F2} ms; " +
            $"request time ratio {Median([.. paired.Select(p => p.Second.EndMs / p.First.EndMs)]):F2}x");
    }

    private static double Median(double[] values) => values.Length == 0 ? 0 : SampleStatistics.Median(values);

    private readonly record struct Timing(int Tokens, double FirstMs, double GapMs, double EndMs);
}

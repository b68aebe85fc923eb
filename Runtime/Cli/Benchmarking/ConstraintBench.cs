using System.Diagnostics;
using System.Globalization;
using OnnxGpt.Runtime.Constraints;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Providers;

namespace OnnxGpt.Cli.Benchmarking;

/// <summary>
/// <c>onnxgpt bench constraint</c>: what structured output costs per token on one model. In one process, for each
/// repetition, it decodes the same prompt free and under a JSON schema (sampled, seeded), and replays the
/// constrained run's tokens through the constraint alone (mask and advance, no model) on a fresh constraint (cold:
/// every state met for the first time, its token mask computed by a scan of the vocabulary trie) and again (warm:
/// every state known). The shares divide the constraint's time per token by the free decode step measured in the
/// same repetition.
/// </summary>
internal static class ConstraintBench
{
    /// <summary>A record-shaped schema whose strings are bounded, so that even a model with random weights completes it.</summary>
    public const string Schema = """
        {"type":"object","properties":{
          "name":{"type":"string","maxLength":24},
          "age":{"type":"integer","minimum":0,"maximum":120},
          "tags":{"type":"array","items":{"type":"string","maxLength":12},"maxItems":4},
          "admin":{"type":"boolean"}},
         "required":["name","age","tags","admin"],"additionalProperties":false}
        """;

    private const string Prompt = "Here is the person as JSON:";

    public static void Run(string variant, string folder, int threads, int reps, int newTokens, TextWriter stdout)
    {
        using var model = GptModel.Load(folder, new SessionSettings { Providers = [new CpuProvider(threads)] });
        var tokenizer = model.Tokenizer ?? throw new ArgumentException($"{folder}: the model has no tokenizer.");
        var prompt = tokenizer.Encode(Prompt);
        Decode(model, prompt, null, 1, 16);   // warm-up: JIT and ONNX Runtime's first runs
        var rows = new List<(double Free, double Constrained, double Cold, double Warm, int Tokens, double ColdStates)>();
        for (int rep = 0; rep < reps; rep++)
        {
            var constraint = OutputConstraint.FromJsonSchema(Schema);   // fresh: its caches start empty
            ulong seed = (ulong)(rep + 1);
            var (freeMs, _) = Decode(model, prompt, null, seed, newTokens);
            var (constrainedMs, tokens) = Decode(model, prompt, OutputConstraint.FromJsonSchema(Schema), seed, newTokens);
            var (cold, states) = Replay(constraint, tokenizer, tokens, model.Config.VocabSize);
            var (warm, _) = Replay(constraint, tokenizer, tokens, model.Config.VocabSize);
            rows.Add((freeMs, constrainedMs, cold, warm, tokens.Length, states));
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  rep {rep + 1} {variant,-6} free step {freeMs:F2} ms | constrained step {constrainedMs:F2} ms (cold caches) | " +
                $"mask+advance cold {cold:F3} ms, warm {warm:F4} ms per token over {tokens.Length} tokens ({states:F0} states met)"));
        }

        double Median(Func<(double Free, double Constrained, double Cold, double Warm, int Tokens, double ColdStates), double> f) =>
            SampleStatistics.Median(rows.Select(f));

        double free = Median(r => r.Free), warmMs = Median(r => r.Warm), coldMs = Median(r => r.Cold);
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {variant} | {free:F2} | {Median(r => r.Constrained):F2} | {coldMs:F3} | {100 * Median(r => r.Cold / r.Free):F1}% | " +
            $"{warmMs * 1000:F0} | {100 * Median(r => r.Warm / r.Free):F2}% |"));
    }

    /// <summary>Decodes up to <paramref name="newTokens"/> sampled tokens; the median decode step in ms, and the tokens.</summary>
    private static (double StepMs, int[] Tokens) Decode(GptModel model, int[] prompt, OutputConstraint? constraint, ulong seed, int newTokens)
    {
        var options = new GenerationOptions { Seed = seed, Temperature = 1.0, TopK = 50, MaxNewTokens = newTokens, Constraint = constraint };
        using var generator = model.CreateGenerator(options, new GeneratorOptions { DecodeText = false, StopAtEndOfSequence = constraint is not null });
        generator.Append(prompt);
        generator.GenerateNextToken();   // the prompt
        var steps = new List<double>();
        while (!generator.IsDone)
        {
            long start = Stopwatch.GetTimestamp();
            generator.GenerateNextToken();
            steps.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }

        steps.Sort();
        var all = generator.GetSequence(0)[prompt.Length..].ToArray();
        return (steps.Count == 0 ? double.NaN : steps[steps.Count / 2], all.Where(t => t != model.Config.EosTokenId).ToArray());
    }

    /// <summary>Mean time per token of masking a logits row and advancing, over <paramref name="tokens"/>; and the states the tables hold after.</summary>
    private static (double MsPerToken, double States) Replay(OutputConstraint constraint, OnnxGpt.Runtime.Tokenization.ITextTokenizer tokenizer, int[] tokens, int vocab)
    {
        var state = constraint.Start(tokenizer);
        var logits = new float[vocab];
        long start = Stopwatch.GetTimestamp();
        foreach (int token in tokens)
        {
            logits.AsSpan().Fill(1f);
            state.Apply(logits);
            state.Advance(token);
        }

        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        // The fill is not the constraint's cost: time it alone and take it off.
        long fillStart = Stopwatch.GetTimestamp();
        for (int i = 0; i < tokens.Length; i++)
        {
            logits.AsSpan().Fill(1f);
        }

        ms -= Stopwatch.GetElapsedTime(fillStart).TotalMilliseconds;
        return (ms / Math.Max(1, tokens.Length), constraint.KnownStates(tokenizer));
    }
}

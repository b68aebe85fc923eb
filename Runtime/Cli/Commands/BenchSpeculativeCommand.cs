using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using OnnxGpt.Cli.Benchmarking;
using OnnxGpt.Cli.Options;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;

namespace OnnxGpt.Cli.Commands;

/// <summary>
/// <c>onnxgpt bench speculative</c>: greedy decoding with and without speculative decoding (<c>--draft DIR</c>
/// and/or <c>--prompt-lookup N</c>) on the same model in one process, the two alternating within every repetition
/// (the order swapped from one repetition to the next). Reports tokens/s of each, their ratio, the acceptance rate,
/// the draft tokens per verifying step (the k chosen) and the managed bytes per token, and checks that both runs
/// produced the same tokens: a difference is an error.
/// </summary>
internal sealed class BenchSpeculativeCommand : CliCommand
{
    private readonly Option<string> _model = CliOption.RequiredText("--model", "DIR", "the model (the target that verifies)");

    private readonly Option<string?> _prompt = CliOption.Text("--prompt", "TEXT", "the prompt, encoded with the model's tokenizer", "--prompt-tokens random ids");

    private readonly Option<string?> _promptFile = CliOption.Text("--prompt-file", "FILE", "the prompt, read from a file", "--prompt-tokens random ids");

    private readonly Option<int> _promptTokens = CliOption.Int("--prompt-tokens", "N", "without --prompt/--prompt-file: N seeded random token ids", 16, min: 1);

    private readonly Option<long> _seed = CliOption.Long("--seed", "N", "seed of the random prompt", 1, min: 0);

    private readonly Option<int> _newTokens = CliOption.Int("--new-tokens", "N", "tokens generated per run; all after the first are timed", 128, min: 2);

    private readonly Option<int> _reps = CliOption.Int("--reps", "N", "repetitions, plain and speculative alternating", 3, min: 1);

    private readonly Option<bool> _json = CliOption.Flag("--json", "one JSON object per run, then one for the summary");

    private readonly SpeculationOptionGroup _speculation = new();

    private readonly SessionOptionGroup _session = new(defaultThreads: 2, threadsDefaultText: "2, for figures comparable across machines");

    public BenchSpeculativeCommand()
        : base("speculative", "greedy decoding with and without speculative decoding (--draft/--prompt-lookup), alternating: tokens/s, ratio, acceptance, k, identical text")
    {
        Options.Add(_model);
        Options.Add(_prompt);
        Options.Add(_promptFile);
        Options.Add(_promptTokens);
        Options.Add(_seed);
        Options.Add(_newTokens);
        Options.Add(_reps);
        _speculation.AddTo(this);
        _session.AddTo(this);
        Options.Add(_json);
        Validators.Add(r =>
        {
            if (!r.Given(_speculation.Draft) && r.ValueIfValid(_speculation.PromptLookup) == 0)
            {
                r.AddError("give --draft DIR and/or --prompt-lookup N: what to compare plain decoding with.");
            }

            if (r.Given(_prompt) && r.Given(_promptFile))
            {
                r.AddError("--prompt and --prompt-file exclude each other.");
            }
        });
    }

    private enum Kind
    {
        Plain,
        Speculative,
        PlainAsleep,
    }

    private sealed record Timing(Kind Kind, double TokensPerSecond, double BytesPerToken, int[] Ids, SpeculationStatistics? Statistics);

    protected override int Run(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        // Plain decoding runs on a session with the default settings. With a draft model, the model's speculative runs
        // go on a second session of the same file whose threads sleep between runs as the draft's do (see
        // SpeculationOptionGroup.ForDraft), and plain decoding is timed on that session too.
        var settings = _session.Read(parse);
        string path = parse.GetRequiredValue(_model);
        using var model = SessionOptionGroup.Load(path, settings, stderr);
        var speculation = _speculation.Load(parse, settings, stderr)!;
        using var draft = speculation.DraftModel;
        using var asleep = draft is null ? null : SessionOptionGroup.Load(path, SpeculationOptionGroup.ForDraft(settings), stderr);
        var target = asleep ?? model;
        int[] prompt = Prompt(parse, model);
        int newTokens = Math.Min(parse.GetValue(_newTokens), model.Config.ContextLength - prompt.Length);
        if (newTokens < 2)
        {
            throw new CliUsageException($"--new-tokens: the prompt has {prompt.Length} tokens and the context {model.Config.ContextLength}, which leaves no room for 2 new tokens.");
        }

        bool json = parse.GetValue(_json);
        var plainOptions = new GenerationOptions { DoSample = false, MaxNewTokens = newTokens };
        var specOptions = plainOptions with { Speculation = speculation };
        string what = string.Join(" + ", new[]
        {
            draft is null ? null : $"draft {draft.ModelPath}",
            speculation.PromptLookup > 0 ? $"prompt lookup {speculation.PromptLookup}" : null,
        }.Where(s => s is not null));
        if (!json)
        {
            stdout.WriteLine($"{model}; {what}; k {(speculation.DraftTokens == 0 ? "adaptive" : speculation.DraftTokens.ToString())}; " +
                $"prompt {prompt.Length} tokens, {newTokens} new (greedy), {settings.Providers.Count} provider(s): {string.Join(", ", model.Providers)}");
            stdout.WriteLine($"{"rep",4} {"run",12} {"tokens/s",9} {"B/token",8} {"accepted",9} {"k",5} {"tok/step",9}");
        }

        // Warm-up: every path once (the first tokens of a process are slower; the draft's session too).
        Measure(model, prompt, plainOptions with { MaxNewTokens = Math.Min(16, newTokens) }, Kind.Plain);
        Measure(target, prompt, specOptions with { MaxNewTokens = Math.Min(16, newTokens) }, Kind.Speculative);
        Kind[] kinds = asleep is null ? [Kind.Plain, Kind.Speculative] : [Kind.Plain, Kind.Speculative, Kind.PlainAsleep];

        var runs = new List<(int Rep, Timing Run)>();
        int reps = parse.GetValue(_reps);
        for (int rep = 0; rep < reps; rep++)
        {
            foreach (var kind in rep % 2 == 0 ? kinds : kinds.Reverse())
            {
                var run = kind switch
                {
                    Kind.Plain => Measure(model, prompt, plainOptions, kind),
                    Kind.PlainAsleep => Measure(asleep!, prompt, plainOptions, kind),
                    _ => Measure(target, prompt, specOptions, kind),
                };
                runs.Add((rep, run));
                Print(stdout, json, rep, run);
            }
        }

        var plain = runs.Where(r => r.Run.Kind == Kind.Plain).ToList();
        var spec = runs.Where(r => r.Run.Kind == Kind.Speculative).ToList();
        var plainAsleep = runs.Where(r => r.Run.Kind == Kind.PlainAsleep).ToList();
        bool identical = runs.All(r => r.Run.Ids.AsSpan().SequenceEqual(plain[0].Run.Ids));
        double? asleepMedian = plainAsleep.Count == 0 ? null : SampleStatistics.Median(plainAsleep.Select(r => r.Run.TokensPerSecond));
        var ratios = Enumerable.Range(0, reps).Select(i => spec[i].Run.TokensPerSecond / plain[i].Run.TokensPerSecond).Order().ToArray();
        double plainMedian = SampleStatistics.Median(plain.Select(r => r.Run.TokensPerSecond)), specMedian = SampleStatistics.Median(spec.Select(r => r.Run.TokensPerSecond));
        long drafted = spec.Sum(s => s.Run.Statistics!.Value.DraftedTokens), accepted = spec.Sum(s => s.Run.Statistics!.Value.AcceptedTokens);
        long rounds = spec.Sum(s => s.Run.Statistics!.Value.Rounds), plainSteps = spec.Sum(s => s.Run.Statistics!.Value.PlainSteps);
        double acceptance = drafted == 0 ? double.NaN : (double)accepted / drafted;
        double meanK = rounds == 0 ? double.NaN : (double)drafted / rounds;
        if (json)
        {
            stdout.WriteLine(new JsonObject
            {
                ["plain_tokens_per_second"] = Math.Round(plainMedian, 3),
                ["speculative_tokens_per_second"] = Math.Round(specMedian, 3),
                ["plain_threads_asleep_tokens_per_second"] = asleepMedian is { } a ? Math.Round(a, 3) : null,
                ["ratio_of_medians"] = Math.Round(specMedian / plainMedian, 4),
                ["median_ratio"] = Math.Round(SampleStatistics.Median(ratios), 4),
                ["ratio_min"] = Math.Round(ratios[0], 4),
                ["ratio_max"] = Math.Round(ratios[^1], 4),
                ["acceptance_rate"] = double.IsNaN(acceptance) ? null : Math.Round(acceptance, 4),
                ["mean_draft_tokens"] = double.IsNaN(meanK) ? null : Math.Round(meanK, 3),
                ["verifying_steps"] = rounds,
                ["plain_steps"] = plainSteps,
                ["identical_tokens"] = identical,
            }.ToJsonString());
        }
        else
        {
            stdout.WriteLine($"plain {plainMedian:F1} tok/s, speculative {specMedian:F1} tok/s (medians): {specMedian / plainMedian:F2}x; " +
                $"per repetition {SampleStatistics.Median(ratios):F2}x [{ratios[0]:F2}-{ratios[^1]:F2}]" +
                (asleepMedian is { } a ? $"; plain on the speculative runs' session (threads asleep between runs) {a:F1} tok/s" : ""));
            stdout.WriteLine($"acceptance {acceptance:P1} ({accepted} of {drafted} draft tokens), {meanK:F2} draft tokens per verifying step, " +
                $"{rounds} verifying and {plainSteps} plain steps; tokens {(identical ? "identical" : "DIFFERENT")} in every run");
        }

        if (!identical)
        {
            stderr.WriteLine("error: speculative decoding produced other tokens than plain greedy decoding.");
            return ExitCodes.Failure;
        }

        return ExitCodes.Success;
    }

    private static Timing Measure(GptModel model, int[] prompt, GenerationOptions options, Kind kind)
    {
        var settings = new GeneratorOptions { DecodeText = false, StopAtEndOfSequence = false };
        using var generator = model.CreateGenerator(options, settings);
        generator.Append(prompt);
        generator.GenerateNextToken();   // the prompt and the first token, plain in both
        long before = GC.GetAllocatedBytesForCurrentThread();
        long started = Stopwatch.GetTimestamp();
        int timed = 0;
        while (!generator.IsDone)
        {
            generator.GenerateNextToken();
            timed++;
        }

        double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        long bytes = GC.GetAllocatedBytesForCurrentThread() - before;
        return new Timing(kind, timed / seconds, (double)bytes / timed, generator.GetSequence(0)[prompt.Length..].ToArray(), generator.Speculation);
    }

    private static void Print(TextWriter stdout, bool json, int rep, Timing run)
    {
        var s = run.Statistics;
        if (json)
        {
            stdout.WriteLine(new JsonObject
            {
                ["rep"] = rep,
                ["run"] = run.Kind.ToString(),
                ["tokens_per_second"] = Math.Round(run.TokensPerSecond, 3),
                ["managed_bytes_per_token"] = Math.Round(run.BytesPerToken, 1),
                ["acceptance_rate"] = s is { DraftedTokens: > 0 } a ? Math.Round(a.AcceptanceRate, 4) : null,
                ["mean_draft_tokens"] = s is { Rounds: > 0 } m ? Math.Round(m.MeanDraftLength, 3) : null,
                ["tokens_per_step"] = s is { Rounds: > 0 } t ? Math.Round(t.TokensPerRound, 3) : null,
            }.ToJsonString());
            return;
        }

        stdout.WriteLine($"{rep,4} {(run.Kind switch { Kind.Plain => "plain", Kind.PlainAsleep => "plain asleep", _ => "speculative" }),12} {run.TokensPerSecond,9:F1} {run.BytesPerToken,8:F0} " +
            $"{(s is { DraftedTokens: > 0 } x ? x.AcceptanceRate.ToString("P0") : "-"),9} {(s is { Rounds: > 0 } y ? y.MeanDraftLength.ToString("F1") : "-"),5} " +
            $"{(s is { Rounds: > 0 } z ? z.TokensPerRound.ToString("F2") : "-"),9}");
    }

    private int[] Prompt(ParseResult parse, GptModel model)
    {
        string? text = parse.GetValue(_prompt);
        if (parse.GetValue(_promptFile) is { } file)
        {
            text = InputFile.ReadAllText(file, "--prompt-file");
        }

        if (text is not null)
        {
            var tokenizer = model.Tokenizer ?? throw new OnnxGptException($"{model.ModelPath}: the model has no tokenizer to encode --prompt with; use --prompt-tokens.");
            var ids = tokenizer.Encode(text);
            if (tokenizer.AddsBosToken && tokenizer.BosTokenId is { } bos)
            {
                ids = [bos, .. ids];
            }

            return ids.Length > 0 ? ids : throw new OnnxGptException("the prompt encodes to no tokens; give a longer one.");
        }

        var random = new Random((int)parse.GetValue(_seed));
        return Enumerable.Range(0, parse.GetValue(_promptTokens)).Select(_ => random.Next(model.Config.VocabSize)).ToArray();
    }
}

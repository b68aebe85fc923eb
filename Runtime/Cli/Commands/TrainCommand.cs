using System.Globalization;
using OnnxGpt.Contracts;
using OnnxGpt.Training;

namespace OnnxGpt.Cli.Commands;

/// <summary><c>onnxgpt train</c>: trains a character-level GPT on a text file, in C#, on the CPU.</summary>
public sealed class TrainCommand : ICommand
{
    public string Name => "train";

    public string Summary => "train a small character-level GPT on a text file (CPU, resumable)";

    public string Usage => """
        usage: onnxgpt train --data FILE (--preset NAME | --config FILE) --steps N --out DIR [options]
               onnxgpt train --data FILE --resume DIR [--steps N] [--out DIR] [options]

          --data FILE         UTF-8 text; the first 90% trains, the rest validates. Its characters are the vocabulary.
          --preset NAME       char-small (default demo shape), char-medium, char-tiny, or a model preset (nano, tiny, ...)
          --config FILE       a config.json instead of a preset (vocab_size is set to the text's character count)
          --steps N           total optimizer steps (the cosine schedule ends there)
          --out DIR           writes config.json, model.safetensors, tokenizer_spec.json (what 'onnxgpt export' reads)
                              and optimizer.safetensors, trainer_state.json (what --resume reads) at every evaluation
          --resume DIR        continue a run saved there (its options, unless given again); --out defaults to DIR
          --batch B           windows per step (default 16)
          --context T         tokens per window (default: the model's context length)
          --lr X              peak learning rate (default 0.002); --min-lr X ends the cosine decay (default lr/10)
          --warmup N          warmup steps (default 100)
          --seed S            seed for initialisation and batch sampling (default 1337)
          --eval-every N      evaluate and save every N steps (default 250)
          --eval-windows N    evaluation windows per split (default 128)
          --time-limit MIN    stop (and save) after this many minutes even if steps remain
          --sample N          print N generated characters at the end (default 300, 0 for none)
        """;

    public IReadOnlyCollection<string> Flags => [];

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        var dataPath = args.Required("data");
        var preset = args.Option("preset");
        var configPath = args.Option("config");
        var resume = args.Option("resume");
        var outDir = args.Option("out") ?? resume ?? throw new CliUsageException("--out is required.");
        int? steps = args.Int("steps");
        int? batch = args.Int("batch");
        int? context = args.Int("context");
        double? lr = args.Double("lr");
        double? minLr = args.Double("min-lr");
        int? warmup = args.Int("warmup");
        long? seed = args.Long("seed");
        int? evalEvery = args.Int("eval-every");
        int? evalWindows = args.Int("eval-windows");
        double? timeLimit = args.Double("time-limit");
        int sample = args.Int("sample") ?? 300;
        args.EnsureAllRead();

        if (resume is not null && (preset is not null || configPath is not null))
        {
            throw new CliUsageException("--resume takes the model from the checkpoint; drop --preset/--config.");
        }

        if (resume is null && (preset is null) == (configPath is null))
        {
            throw new CliUsageException("give exactly one of --preset and --config (or --resume).");
        }

        if (seed is < 0)
        {
            throw new CliUsageException($"--seed must be 0 or more, not {seed}.");
        }

        if (timeLimit is <= 0)
        {
            throw new CliUsageException($"--time-limit must be a positive number of minutes, not {timeLimit}.");
        }

        TrainingOptions Apply(TrainingOptions o) => o with
        {
            Steps = steps ?? o.Steps,
            BatchSize = batch ?? o.BatchSize,
            Context = context ?? o.Context,
            LearningRate = lr ?? o.LearningRate,
            MinLearningRate = minLr ?? (lr is not null ? null : o.MinLearningRate),
            WarmupSteps = warmup ?? o.WarmupSteps,
            Seed = seed is { } s ? (ulong)s : o.Seed,
            EvalEvery = evalEvery ?? o.EvalEvery,
            EvalWindows = evalWindows ?? o.EvalWindows,
        };

        Trainer trainer;
        if (resume is not null)
        {
            var saved = Trainer.ReadOptions(resume);
            var vocabulary = Trainer.LoadVocabulary(resume);
            var corpus = TextCorpus.Load(dataPath, saved.TrainFraction, vocabulary);
            trainer = Trainer.Resume(resume, corpus, Apply(saved));
            stdout.WriteLine($"resuming {resume} at step {trainer.Step}");
        }
        else
        {
            if (steps is null)
            {
                throw new CliUsageException("--steps is required.");
            }

            var corpus = TextCorpus.Load(dataPath);
            var config = preset is not null
                ? TrainingPresets.Get(preset, corpus.Vocabulary.Count)
                : GptConfig.FromJson(File.ReadAllText(configPath!), configPath!) with
                {
                    VocabSize = corpus.Vocabulary.Count, BosTokenId = null, EosTokenId = null,
                };
            trainer = new Trainer(config, corpus, Apply(new TrainingOptions { Steps = steps.Value }));
        }

        var c = trainer.Model.Config;
        var o = trainer.Options;
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"model: {c.Layers} layers, width {c.Width}, {c.Heads} heads, context {c.ContextLength}, vocab {c.VocabSize}, {c.ParameterCount:N0} parameters"));
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"data: {trainer.Corpus.Train.Length:N0} train / {trainer.Corpus.Validation.Length:N0} validation tokens; " +
            $"{o.Steps} steps of {o.BatchSize}x{trainer.Context} tokens, lr {o.LearningRate} (warmup {o.WarmupSteps}), seed {o.Seed}"));

        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        TrainingProgress final;
        try
        {
            final = trainer.Run(outDir, p => stdout.WriteLine(p.ToString()), timeLimit is { } m ? TimeSpan.FromMinutes(m) : null, cancel.Token);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }

        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"done: step {final.Step}, train {final.EvalTrainLoss:F4}, val {final.ValidationLoss:F4} nats/char, {final.TokensPerSecond:F0} tok/s, saved to {outDir}"));
        if (sample > 0)
        {
            var vocab = trainer.Corpus.Vocabulary;
            var prompt = vocab.Encode("\n");
            var text = vocab.Decode(TextSampler.Generate(trainer.Model, prompt, sample, 0.8, new TrainingRandom(o.Seed)));
            stdout.WriteLine("sample (temperature 0.8):");
            stdout.WriteLine(text);
        }

        return 0;
    }
}

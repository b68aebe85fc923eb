using System.CommandLine;
using System.Globalization;
using OnnxGpt.Cli.Options;
using OnnxGpt.Contracts;
using OnnxGpt.Training;

namespace OnnxGpt.Cli.Commands;

/// <summary><c>onnxgpt train</c>: trains a character-level GPT on a text file, in C#, on the CPU.</summary>
internal sealed class TrainCommand : CliCommand
{
    private const string OrResumed = " (or the resumed run's)";

    private readonly Option<string> _data = CliOption.RequiredText("--data", "FILE",
        "UTF-8 text; the first 90% trains, the rest validates. Its characters are the vocabulary.");

    private readonly Option<string?> _preset = CliOption.OptionalChoice("--preset",
        $"the model's shape: a training preset ({string.Join(", ", TrainingPresets.Names)}; char-small is the demo's) " +
        $"or a model preset ({string.Join(", ", GptPresets.Names)})", "none", [.. TrainingPresets.Names, .. GptPresets.Names], helpName: "NAME");

    private readonly Option<string?> _config = CliOption.Text("--config", "FILE",
        "a config.json instead of a preset (vocab_size is set to the text's character count)", "none");

    private readonly Option<int?> _steps = CliOption.OptionalInt("--steps", "N",
        "total optimizer steps (the cosine schedule ends there); required unless --resume", "the resumed run's", min: 1);

    private readonly Option<string?> _out = CliOption.Text("--out", "DIR",
        "writes config.json, model.safetensors, tokenizer_spec.json (what 'onnxgpt export --hf' reads) and optimizer.safetensors, " +
        "trainer_state.json (what --resume reads) at every evaluation; required unless --resume", "the --resume folder");

    private readonly Option<string?> _resume = CliOption.Text("--resume", "DIR",
        "continue a run saved there, with its options unless given again", "none");

    private readonly Option<int?> _batch = CliOption.OptionalInt("--batch", "B", "windows per step", "16" + OrResumed, min: 1);

    private readonly Option<int?> _context = CliOption.OptionalInt("--context", "T", "tokens per window", "the model's context length", min: 1);

    private readonly Option<double?> _lr = CliOption.OptionalNumber("--lr", "X", "peak learning rate", "0.002" + OrResumed, NumberRange.Above(0));

    private readonly Option<double?> _minLr = CliOption.OptionalNumber("--min-lr", "X", "the learning rate the cosine decay ends at",
        "a tenth of --lr", NumberRange.AtLeast(0));

    private readonly Option<int?> _warmup = CliOption.OptionalInt("--warmup", "N", "warmup steps", "100" + OrResumed, min: 0);

    private readonly Option<long?> _seed = CliOption.OptionalLong("--seed", "S", "seed for initialisation and batch sampling", "1337" + OrResumed, min: 0);

    private readonly Option<int?> _evalEvery = CliOption.OptionalInt("--eval-every", "N", "evaluate and save every N steps", "250" + OrResumed, min: 1);

    private readonly Option<int?> _evalWindows = CliOption.OptionalInt("--eval-windows", "N", "evaluation windows per split", "128" + OrResumed, min: 1);

    private readonly Option<double?> _timeLimit = CliOption.OptionalNumber("--time-limit", "MIN",
        "stop (and save) after this many minutes even if steps remain", "none", NumberRange.Above(0));

    private readonly Option<int> _sample = CliOption.Int("--sample", "N", "print N generated characters at the end (0 for none)", 300, min: 0);

    public TrainCommand()
        : base("train", "train a small character-level GPT on a text file (CPU, resumable)")
    {
        Options.Add(_data);
        Options.Add(_preset);
        Options.Add(_config);
        Options.Add(_steps);
        Options.Add(_out);
        Options.Add(_resume);
        Options.Add(_batch);
        Options.Add(_context);
        Options.Add(_lr);
        Options.Add(_minLr);
        Options.Add(_warmup);
        Options.Add(_seed);
        Options.Add(_evalEvery);
        Options.Add(_evalWindows);
        Options.Add(_timeLimit);
        Options.Add(_sample);
        Validators.Add(r =>
        {
            bool resume = r.Given(_resume), shape = r.Given(_preset) || r.Given(_config);
            if (resume && shape)
            {
                r.AddError("--resume takes the model from the checkpoint; drop --preset/--config.");
            }
            else if (!resume && (r.Given(_preset) == r.Given(_config)))
            {
                r.AddError("give exactly one of --preset and --config (or --resume).");
            }

            if (!resume && !r.Given(_steps))
            {
                r.AddError("--steps is required (unless --resume).");
            }

            if (!resume && !r.Given(_out))
            {
                r.AddError("--out is required (unless --resume).");
            }
        });
    }

    protected override int Run(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        var dataPath = parse.GetRequiredValue(_data);
        var preset = parse.GetValue(_preset);
        var configPath = parse.GetValue(_config);
        var resume = parse.GetValue(_resume);
        var outDir = parse.GetValue(_out) ?? resume!;
        int? steps = parse.GetValue(_steps);
        int? batch = parse.GetValue(_batch);
        int? context = parse.GetValue(_context);
        double? lr = parse.GetValue(_lr);
        double? minLr = parse.GetValue(_minLr);
        int? warmup = parse.GetValue(_warmup);
        long? seed = parse.GetValue(_seed);
        int? evalEvery = parse.GetValue(_evalEvery);
        int? evalWindows = parse.GetValue(_evalWindows);
        double? timeLimit = parse.GetValue(_timeLimit);
        int sample = parse.GetValue(_sample);

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

        return ExitCodes.Success;
    }
}

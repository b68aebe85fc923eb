using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.Json;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Training;

/// <summary>
/// Trains a <see cref="TrainableGpt{T}"/> (float) on a <see cref="TextCorpus"/>: seeded batches, AdamW, warmup +
/// cosine schedule, global-norm clipping, periodic evaluation on fixed windows, and resumable checkpoints.
/// A run with the same seed, options and data repeats bit for bit (on the same machine and .NET version).
/// </summary>
public sealed class Trainer
{
    /// <summary>Files a training folder holds besides the exportable <c>config.json</c>, <c>model.safetensors</c>, <c>tokenizer_spec.json</c>.</summary>
    public const string OptimizerFile = "optimizer.safetensors";

    public const string StateFile = "trainer_state.json";

    public const string WeightsFile = HfCheckpoint.WeightsFile;

    public const string ConfigFile = HfCheckpoint.ConfigFile;

    public const string TokenizerFile = OnnxGpt.Contracts.TokenizerDetection.SpecFile;

    private readonly AdamW<float> _optimizer;
    private readonly LearningRateSchedule _schedule;
    private readonly List<JsonObject> _history = [];
    private TrainingRandom _random;
    private readonly int[] _inputs;
    private readonly int[] _targets;

    /// <summary>A fresh run: GPT-2 initialisation from <see cref="TrainingOptions.Seed"/>.</summary>
    public Trainer(GptConfig config, TextCorpus corpus, TrainingOptions options)
        : this(new TrainableGpt<float>(config), corpus, options, new TrainingRandom(options?.Seed ?? 0))
    {
        Model.InitializeGpt2(_random);
    }

    private Trainer(TrainableGpt<float> model, TextCorpus corpus, TrainingOptions options, TrainingRandom random)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        ArgumentNullException.ThrowIfNull(options);
        Model = model;
        Corpus = corpus;
        Options = options.Validate(model.Config.ContextLength);
        if (model.Config.VocabSize != corpus.Vocabulary.Count)
        {
            throw new OnnxGptException(
                $"config: vocab_size {model.Config.VocabSize} does not match the corpus's {corpus.Vocabulary.Count} distinct characters.");
        }

        Context = options.Context ?? model.Config.ContextLength;
        if (corpus.Train.Length < Context + 1 || corpus.Validation.Length < Context + 1)
        {
            throw new OnnxGptException(
                $"data: the split has {corpus.Train.Length} training and {corpus.Validation.Length} validation tokens; each needs at least context + 1 = {Context + 1}.");
        }

        _random = random;
        _optimizer = new AdamW<float>(model.Slots, model.Parameters.Length, options.Beta1, options.Beta2, weightDecay: options.WeightDecay);
        _schedule = new LearningRateSchedule(options.LearningRate, options.MinLearningRate ?? options.LearningRate / 10,
            options.WarmupSteps, options.Steps);
        _inputs = new int[options.BatchSize * Context];
        _targets = new int[options.BatchSize * Context];
    }

    public TrainableGpt<float> Model { get; }

    public TextCorpus Corpus { get; }

    public TrainingOptions Options { get; }

    /// <summary>Tokens per training window.</summary>
    public int Context { get; }

    /// <summary>Steps taken so far.</summary>
    public int Step { get; private set; }

    /// <summary>Continues the run saved in <paramref name="folder"/>; <paramref name="options"/> may change the step count and rates.</summary>
    public static Trainer Resume(string folder, TextCorpus corpus, TrainingOptions options)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(corpus);
        ArgumentNullException.ThrowIfNull(options);
        var state = ReadState(folder);
        var model = LoadModel(folder);
        var rngState = state["rng_state"]?.AsArray().Select(n => n!.GetValue<ulong>()).ToArray()
            ?? throw new OnnxGptException($"{folder}/{StateFile}: 'rng_state' is missing.");
        var trainer = new Trainer(model, corpus, options, TrainingRandom.FromState(rngState));
        trainer.Step = state["step"]?.GetValue<int>() ?? throw new OnnxGptException($"{folder}/{StateFile}: 'step' is missing.");
        trainer._optimizer.StepCount = state["adam_step"]?.GetValue<int>() ?? trainer.Step;
        var optimizerPath = Path.Combine(folder, OptimizerFile);
        if (!File.Exists(optimizerPath))
        {
            throw new OnnxGptException($"{optimizerPath}: not found; --resume needs the optimizer state 'onnxgpt train' saves.");
        }

        using (var moments = SafetensorsFile.Open(optimizerPath))
        {
            foreach (var slot in trainer.Model.Slots)
            {
                CopyMoment(moments, "exp_avg." + slot.Name, slot, trainer._optimizer.FirstMoment);
                CopyMoment(moments, "exp_avg_sq." + slot.Name, slot, trainer._optimizer.SecondMoment);
            }
        }

        if (state["history"] is JsonArray history)
        {
            trainer._history.AddRange(history.OfType<JsonObject>().Select(h => (JsonObject)h.DeepClone()));
        }

        return trainer;
    }

    /// <summary>Reads the model a training folder holds (<c>config.json</c> + <c>model.safetensors</c>).</summary>
    public static TrainableGpt<float> LoadModel(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        return TrainableGpt<float>.FromWeights(HfCheckpoint.Load(folder));
    }

    /// <summary>Reads the character vocabulary a training folder holds (<c>tokenizer_spec.json</c>).</summary>
    public static CharVocabulary LoadVocabulary(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        var path = Path.Combine(folder, TokenizerFile);
        if (!File.Exists(path))
        {
            throw new OnnxGptException($"{path}: not found; expected a folder written by 'onnxgpt train'.");
        }

        return CharVocabulary.FromSpec(TokenizerSpec.FromJson(File.ReadAllText(path), path), path);
    }

    /// <summary>The training options a folder was saved with (for a resume that keeps them).</summary>
    public static TrainingOptions ReadOptions(string folder)
    {
        var state = ReadState(folder);
        return TrainingOptions.FromJson(state["options"]?.ToJsonString() ?? throw new OnnxGptException($"{folder}/{StateFile}: 'options' is missing."),
            Path.Combine(folder, StateFile));
    }

    /// <summary>One optimizer step on a fresh random batch. Returns the batch's mean loss (before the update).</summary>
    public double TrainStep(out double gradientNorm, out double learningRate)
    {
        TextCorpus.SampleBatch(Corpus.Train, Options.BatchSize, Context, _random, _inputs, _targets);
        float loss = Model.Forward(_inputs, _targets, Options.BatchSize, Context);
        Model.ZeroGradients();
        Model.Backward();
        gradientNorm = AdamW<float>.ClipByGlobalNorm(Model.Gradients, Options.GradientClip);
        learningRate = _schedule.At(Step);
        _optimizer.Step(Model.Parameters, Model.Gradients, learningRate);
        Step++;
        return loss;
    }

    /// <summary>Mean loss (nats per token) over the fixed evaluation windows of <paramref name="data"/>.</summary>
    public double Evaluate(int[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        int batch = Options.BatchSize;
        var windows = TextCorpus.EvaluationWindows(data.Length, Context, Options.EvalWindows);
        if (windows.Length >= batch)
        {
            windows = windows[..(windows.Length / batch * batch)]; // whole batches keep the buffers the same size
        }
        else
        {
            batch = windows.Length;
        }

        var inputs = new int[batch * Context];
        var targets = new int[batch * Context];
        double sum = 0;
        int batches = 0;
        for (int w = 0; w + batch <= windows.Length; w += batch)
        {
            for (int b = 0; b < batch; b++)
            {
                data.AsSpan(windows[w + b], Context).CopyTo(inputs.AsSpan(b * Context));
                data.AsSpan(windows[w + b] + 1, Context).CopyTo(targets.AsSpan(b * Context));
            }

            sum += Model.Forward(inputs, targets, batch, Context);
            batches++;
        }

        return sum / batches;
    }

    /// <summary>
    /// Trains to <see cref="TrainingOptions.Steps"/> (or until <paramref name="timeLimit"/> or cancellation), reporting
    /// progress, evaluating every <see cref="TrainingOptions.EvalEvery"/> steps and at the end, and saving to
    /// <paramref name="folder"/> (when given) at each evaluation. Returns the last evaluation's report.
    /// </summary>
    public TrainingProgress Run(string? folder, Action<TrainingProgress>? report = null, TimeSpan? timeLimit = null,
        CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        var trainTime = TimeSpan.Zero;
        long tokens = 0;
        int startStep = Step;
        double lossSum = 0, norm = 0, lr = 0;
        int lossCount = 0;
        TrainingProgress? last = null;

        TrainingProgress Progress(bool evaluate)
        {
            double perStep = Step > startStep ? trainTime.TotalSeconds / (Step - startStep) : 0;
            var p = new TrainingProgress
            {
                Step = Step,
                TotalSteps = Options.Steps,
                TrainLoss = lossCount > 0 ? lossSum / lossCount : double.NaN,
                LearningRate = lr,
                GradientNorm = norm,
                TokensPerSecond = trainTime > TimeSpan.Zero ? tokens / trainTime.TotalSeconds : 0,
                Elapsed = clock.Elapsed,
                Remaining = TimeSpan.FromSeconds(perStep * Math.Max(0, Options.Steps - Step)),
            };
            if (evaluate)
            {
                p = p with { EvalTrainLoss = Evaluate(Corpus.Train), ValidationLoss = Evaluate(Corpus.Validation) };
                _history.Add(new JsonObject
                {
                    ["step"] = Step, ["train_loss"] = p.EvalTrainLoss, ["val_loss"] = p.ValidationLoss,
                    ["elapsed_s"] = Math.Round(clock.Elapsed.TotalSeconds, 1), ["tokens_per_s"] = Math.Round(p.TokensPerSecond),
                });
                if (folder is not null)
                {
                    Save(folder);
                }
            }

            lossSum = 0;
            lossCount = 0;
            return p;
        }

        while (Step < Options.Steps)
        {
            if (cancellationToken.IsCancellationRequested || (timeLimit is { } limit && clock.Elapsed >= limit))
            {
                break;
            }

            var before = clock.Elapsed;
            lossSum += TrainStep(out norm, out lr);
            lossCount++;
            trainTime += clock.Elapsed - before;
            tokens += (long)Options.BatchSize * Context;
            bool evaluate = Step % Options.EvalEvery == 0 || Step == Options.Steps;
            if (evaluate || Step % Options.LogEvery == 0)
            {
                var p = Progress(evaluate);
                if (evaluate)
                {
                    last = p;
                }

                report?.Invoke(p);
            }
        }

        if (last is null || last.Step != Step)
        {
            last = Progress(evaluate: true); // stopped early, or resumed at the end: evaluate and save what there is
            report?.Invoke(last);
        }

        return last;
    }

    /// <summary>
    /// Writes the exportable model (<c>config.json</c>, <c>model.safetensors</c>, <c>tokenizer_spec.json</c>) and the
    /// state a resume needs (<c>optimizer.safetensors</c>, <c>trainer_state.json</c>). Each file is written under a
    /// temporary name and then moved into place, so an interrupted save leaves whole files behind.
    /// </summary>
    public void Save(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        Directory.CreateDirectory(folder);
        HfCheckpoint.Save(Model.ToWeights(), folder); // config.json + model.safetensors (written to a temp name, then moved)
        WriteAtomically(Path.Combine(folder, TokenizerFile), p => File.WriteAllText(p, Corpus.Vocabulary.ToSpec().ToJson()));
        var moments = new List<KeyValuePair<string, Tensor>>();
        foreach (var slot in Model.Slots)
        {
            moments.Add(KeyValuePair.Create("exp_avg." + slot.Name, new Tensor((int[])slot.Shape.Clone(), _optimizer.FirstMoment.AsSpan(slot.Offset, slot.Length).ToArray())));
            moments.Add(KeyValuePair.Create("exp_avg_sq." + slot.Name, new Tensor((int[])slot.Shape.Clone(), _optimizer.SecondMoment.AsSpan(slot.Offset, slot.Length).ToArray())));
        }

        SafetensorsWriter.Write(Path.Combine(folder, OptimizerFile), moments);
        var state = new JsonObject
        {
            ["step"] = Step,
            ["adam_step"] = _optimizer.StepCount,
            ["rng_state"] = new JsonArray(_random.GetState().Select(s => (JsonNode)JsonValue.Create(s)).ToArray()),
            ["options"] = JsonNode.Parse(Options.ToJson()),
            ["data"] = new JsonObject { ["train_tokens"] = Corpus.Train.Length, ["validation_tokens"] = Corpus.Validation.Length },
            ["history"] = new JsonArray(_history.Select(h => (JsonNode)h.DeepClone()).ToArray()),
        };
        WriteAtomically(Path.Combine(folder, StateFile), p => File.WriteAllText(p, state.ToJsonString(TrainingOptions.JsonOptions)));
    }

    private static void WriteAtomically(string path, Action<string> write)
    {
        var temp = path + ".tmp";
        write(temp);
        File.Move(temp, path, overwrite: true);
    }

    private static JsonObject ReadState(string folder)
    {
        var path = Path.Combine(folder, StateFile);
        if (!File.Exists(path))
        {
            throw new OnnxGptException($"{path}: not found; --resume needs a folder written by 'onnxgpt train'.");
        }

        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new OnnxGptException($"{path}: expected a JSON object.");
        }
        catch (JsonException e)
        {
            throw new OnnxGptException($"{path}: not valid JSON ({e.Message}).", e);
        }
    }

    private static void CopyMoment(SafetensorsFile moments, string name, ParameterSlot slot, float[] destination)
    {
        var tensor = moments.ReadTensor(name);
        if (!tensor.ShapeEquals(slot.Shape))
        {
            throw new OnnxGptException($"{moments.Path}: tensor '{name}' has shape {tensor.ShapeText}, expected {Tensor.FormatShape(slot.Shape)}.");
        }

        tensor.Data.CopyTo(destination, slot.Offset);
    }
}

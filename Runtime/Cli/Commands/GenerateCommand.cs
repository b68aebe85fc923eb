using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using OnnxGpt.Cli.Options;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Constraints;
using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Cli.Commands;

/// <summary><c>onnxgpt generate</c>: continue a prompt (or a file of prompts, as one batch), streaming text to stdout.</summary>
internal sealed class GenerateCommand : CliCommand
{
    private const string ModelsDefault = "the model's (see onnxgpt inspect)";

    private readonly Option<string> _model = CliOption.RequiredText("--model", "DIR", "a model folder (or .onnx file)");

    private readonly Option<string?> _prompt = CliOption.Text("--prompt", "TEXT", "the prompt, encoded with the model's tokenizer", "none");

    private readonly Option<int[]?> _ids = CliOption.IntList("--ids", "1,2,3",
        "the prompt as token ids (for a model without a tokenizer, output is ids too)", "none", min: 0);

    private readonly Option<string?> _promptsFile = CliOption.Text("--prompts-file", "FILE",
        "one prompt per line, generated together as a batch", "none");

    private readonly Option<int?> _maxNewTokens = CliOption.OptionalInt("--max-new-tokens", "N",
        "most tokens to generate after the prompt", ModelsDefault, min: 0);

    private readonly Option<bool> _greedy = CliOption.Flag("--greedy", "pick the most likely token (same as --temperature 0)");

    private readonly Option<double?> _temperature = CliOption.OptionalNumber("--temperature", "T",
        "divide the logits by T before sampling; 0 picks the most likely token", ModelsDefault, NumberRange.AtLeast(0));

    private readonly Option<int?> _topK = CliOption.OptionalInt("--top-k", "K",
        "sample from the K most likely tokens; 0 turns top-k off", ModelsDefault, min: 0);

    private readonly Option<double?> _topP = CliOption.OptionalNumber("--top-p", "P",
        "sample from the most likely tokens whose probability reaches P; 1 turns top-p off", ModelsDefault, new NumberRange(0, 1, MinExclusive: true));

    private readonly Option<double?> _repetitionPenalty = CliOption.OptionalNumber("--repetition-penalty", "R",
        "divide the logits of tokens seen before by R (Hugging Face's penalty); 1 turns it off", ModelsDefault, NumberRange.Above(0));

    private readonly Option<double?> _presencePenalty = CliOption.OptionalNumber("--presence-penalty", "P",
        "OpenAI's presence penalty: subtract P once from the logit of every token already generated", "0", new NumberRange(-2, 2));

    private readonly Option<double?> _frequencyPenalty = CliOption.OptionalNumber("--frequency-penalty", "F",
        "OpenAI's frequency penalty: subtract F from a token's logit per time it was generated", "0", new NumberRange(-2, 2));

    private readonly Option<Dictionary<int, double>?> _logitBias = CliOption.Custom("--logit-bias", "ID:BIAS,...",
        "OpenAI's logit bias: add BIAS (-100..100) to token ID's logit", "none", ParseLogitBias);

    private readonly Option<int?> _noRepeatNgram = CliOption.OptionalInt("--no-repeat-ngram-size", "N",
        "never repeat an n-gram of N tokens (Hugging Face's no_repeat_ngram_size)", "0: off", min: 0);

    private readonly Option<int?> _numBeams = CliOption.OptionalInt("--num-beams", "N",
        "beam search with N beams (Hugging Face's semantics, as ONNX Runtime's BeamSearch); sampling options are not used", "1: no beam search", min: 1);

    private readonly Option<double?> _lengthPenalty = CliOption.OptionalNumber("--length-penalty", "L",
        "beam search: a hypothesis scores its summed log-probabilities / length^L", "1", new NumberRange(-10, 10));

    private readonly Option<string?> _earlyStopping = CliOption.FlagOrChoice("--early-stopping",
        "beam search: stop once N hypotheses are finished (alone or true); never: only when none can improve; false: Hugging Face's heuristic",
        "true", ["true", "false", "never"]);

    private readonly Option<string?> _beamLength = CliOption.OptionalChoice("--beam-length",
        "beam search: what the length under --length-penalty counts: with-prompt (ONNX Runtime, vLLM, transformers up to 4.35) or generated (transformers since)",
        "with-prompt", ["with-prompt", "generated"]);

    private readonly Option<int?> _numReturnSequences = CliOption.OptionalInt("--num-return-sequences", "K",
        "sequences per prompt: the K best beams, or K samples (the prompt run once)", "1", min: 1);

    private readonly Option<int?> _topLogProbs = CliOption.OptionalInt("--top-logprobs", "K",
        "with --json: each generated token's log-probability and the K most likely alternatives", "none", min: 0, max: GenerationOptions.MaxTopLogProbs);

    private readonly Option<long?> _seed = CliOption.OptionalLong("--seed", "S",
        "seed of the sampler, to repeat a run", "random, printed on stderr", min: 0);

    private readonly Option<string[]> _stop = CliOption.Repeated("--stop", "TEXT", "stop a sequence when its text contains TEXT", "none");

    private readonly Option<string> _truncate = CliOption.Choice("--truncate",
        "left: drop the oldest prompt tokens when the prompt does not fit the context; none: refuse such a prompt", "none", ["none", "left"]);

    private readonly Option<bool> _noCache = CliOption.Flag("--no-cache", "recompute the whole sequence every step (slow; for comparison)");

    private readonly Option<bool> _json = CliOption.Flag("--json",
        "one JSON object per sequence: ids (prompt + generated), text, finish reason, timing");

    private readonly Option<string?> _jsonSchema = CliOption.Text("--json-schema", "FILE",
        "constrain the output to JSON that this JSON Schema accepts (the subset is in docs/structured-output.md)", "none");

    private readonly Option<string?> _grammar = CliOption.Text("--grammar", "FILE",
        "constrain the output to the sentences of this grammar (GBNF format, starting at 'root')", "none");

    private readonly Option<bool> _jsonObject = CliOption.Flag("--json-object",
        "constrain the output to any JSON value (OpenAI's json_object; --json is the output format)");

    private readonly SessionOptionGroup _session = new();

    private readonly SpeculationOptionGroup _speculation = new();

    public GenerateCommand()
        : base("generate", "generate text from a prompt (or token ids), streamed to stdout")
    {
        Options.Add(_model);
        Options.Add(_prompt);
        Options.Add(_ids);
        Options.Add(_promptsFile);
        Options.Add(_maxNewTokens);
        Options.Add(_greedy);
        Options.Add(_temperature);
        Options.Add(_topK);
        Options.Add(_topP);
        Options.Add(_repetitionPenalty);
        Options.Add(_presencePenalty);
        Options.Add(_frequencyPenalty);
        Options.Add(_logitBias);
        Options.Add(_noRepeatNgram);
        Options.Add(_numBeams);
        Options.Add(_lengthPenalty);
        Options.Add(_earlyStopping);
        Options.Add(_beamLength);
        Options.Add(_numReturnSequences);
        Options.Add(_topLogProbs);
        Options.Add(_seed);
        Options.Add(_stop);
        Options.Add(_truncate);
        Options.Add(_noCache);
        Options.Add(_jsonSchema);
        Options.Add(_grammar);
        Options.Add(_jsonObject);
        _speculation.AddTo(this);
        _session.AddTo(this);
        Options.Add(_json);
        Validators.Add(r =>
        {
            if ((r.Given(_prompt) ? 1 : 0) + (r.Given(_ids) ? 1 : 0) + (r.Given(_promptsFile) ? 1 : 0) != 1)
            {
                r.AddError("give exactly one of --prompt, --ids, --prompts-file.");
            }

            if ((r.Given(_jsonSchema) ? 1 : 0) + (r.Given(_grammar) ? 1 : 0) + (r.Given(_jsonObject) ? 1 : 0) > 1)
            {
                r.AddError("give at most one of --json-schema, --grammar, --json-object.");
            }

            if (r.Given(_promptsFile) && (r.Given(_speculation.Draft) || r.ValueIfValid(_speculation.PromptLookup) > 0))
            {
                r.AddError("--draft and --prompt-lookup speculate for one sequence; --prompts-file runs a batch (use one prompt, or serve the model, whose engine speculates per request).");
            }

            if (r.ValueIfValid(_stop) is { } stops && stops.Any(s => s.Length == 0))
            {
                r.AddError("--stop: a stop string needs at least one character.");
            }

            int beams = r.ValueIfValid(_numBeams) ?? 1;
            if (beams > 1 && r.ValueIfValid(_numReturnSequences) is { } k && k > beams)
            {
                r.AddError($"--num-return-sequences ({k}) must not exceed --num-beams ({beams}).");
            }

            if (beams == 1 && (r.Given(_lengthPenalty) || r.Given(_earlyStopping) || r.Given(_beamLength)))
            {
                r.AddError("--length-penalty, --early-stopping and --beam-length apply to beam search: add --num-beams N (N > 1).");
            }

            if (beams > 1 && r.Given(_stop))
            {
                r.AddError("--stop: beam search takes stop tokens, not stop strings.");
            }
        });
    }

    protected override int Run(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        string? prompt = parse.GetValue(_prompt), promptsFile = parse.GetValue(_promptsFile);
        int[]? ids = parse.GetValue(_ids);
        var constraint = ReadConstraint(parse);
        var sessionSettings = _session.Read(parse);
        var modelSettings = _speculation.HasDraft(parse) ? SpeculationOptionGroup.ForDraft(sessionSettings) : sessionSettings;
        using var model = SessionOptionGroup.Load(parse.GetRequiredValue(_model), modelSettings, stderr);
        var speculation = _speculation.Load(parse, sessionSettings, stderr);
        using var draft = speculation?.DraftModel;
        var options = new GenerationOverrides
        {
            MaxNewTokens = parse.GetValue(_maxNewTokens),
            Temperature = parse.GetValue(_temperature),
            TopK = parse.GetValue(_topK),
            TopP = parse.GetValue(_topP),
            RepetitionPenalty = parse.GetValue(_repetitionPenalty),
            Seed = parse.GetValue(_seed) is { } seed ? (ulong)seed : null,
            Greedy = parse.GetValue(_greedy),
            StopStrings = parse.GetValue(_stop) ?? [],
            PresencePenalty = parse.GetValue(_presencePenalty),
            FrequencyPenalty = parse.GetValue(_frequencyPenalty),
            LogitBias = parse.GetValue(_logitBias),
            NoRepeatNgramSize = parse.GetValue(_noRepeatNgram),
            NumBeams = parse.GetValue(_numBeams),
            LengthPenalty = parse.GetValue(_lengthPenalty),
            EarlyStopping = parse.GetValue(_earlyStopping) switch
            {
                "true" => BeamEarlyStopping.Early,
                "false" => BeamEarlyStopping.Heuristic,
                "never" => BeamEarlyStopping.Never,
                _ => null,
            },
            NumReturnSequences = parse.GetValue(_numReturnSequences),
            TopLogProbs = parse.GetValue(_topLogProbs),
        }.ApplyTo(GenerationOptions.FromDefaults(model.GenerationDefaults) with { Speculation = speculation }) with
        {
            Constraint = constraint,
            BeamLength = parse.GetValue(_beamLength) == "generated" ? BeamLength.Generated : BeamLength.WithPrompt,
        };
        options.Validate();   // The command line's values were checked when parsed; this checks the model's defaults.

        var settings = new GeneratorOptions
        {
            UseKvCache = !parse.GetValue(_noCache),
            Truncation = parse.GetValue(_truncate) == "left" ? PromptTruncation.Left : PromptTruncation.None,
        };
        using var generator = model.CreateGenerator(options, settings);
        string[]? texts = null;
        if (ids is { Length: > 0 })   // Not given, an array option reads as empty.
        {
            generator.Append(ids);
            if (model.Tokenizer is { } tokenizer)
            {
                texts = [tokenizer.Decode(ids)];
            }
        }
        else
        {
            texts = prompt is not null ? [prompt] : ReadPrompts(promptsFile!);
            generator.AppendTextBatch(texts);
        }

        if (generator.TruncatedTokens > 0)
        {
            stderr.WriteLine($"warning: the prompt did not fit the context of {model.Config.ContextLength} tokens; dropped its first {generator.TruncatedTokens}.");
        }

        if (options.Seed is null && !options.IsGreedy && !options.IsBeamSearch)
        {
            stderr.WriteLine($"seed {generator.Seed}");
        }

        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            bool json = parse.GetValue(_json);
            if (json || generator.BatchSize > 1)
            {
                var results = generator.GenerateAll(cancel.Token);
                foreach (var r in results)
                {
                    if (json)
                    {
                        stdout.WriteLine(ToJson(r));
                    }
                    else
                    {
                        stdout.WriteLine($"--- {r.Row}: {r.FinishReason}{(r.Score is { } score ? $", score {score:F6}" : "")}");
                        stdout.WriteLine((texts?[r.Prompt] ?? string.Join(" ", r.Ids.Take(r.PromptLength))) + (r.Text ?? " " + string.Join(" ", r.NewIds)));
                    }
                }

                PrintTiming(stderr, results);
                PrintSpeculation(stderr, generator);
                return ExitCodes.Success;
            }

            Stream(generator, texts?[0], stdout, cancel.Token);
            PrintTiming(stderr, generator.Results());
            if (generator.GetConstraintState(0) is { IsComplete: false })
            {
                stderr.WriteLine($"warning: the output is incomplete: it stopped ({generator.GetFinishReason(0)}) before completing the {constraint!.Description}.");
            }

            PrintSpeculation(stderr, generator);
            return ExitCodes.Success;
        }
        catch (OperationCanceledException)
        {
            stdout.WriteLine();
            stderr.WriteLine("cancelled");
            return ExitCodes.Cancelled;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>One sequence, printed as it is generated: the prompt, then each piece of text (or each id).</summary>
    private static void Stream(Generator generator, string? prompt, TextWriter stdout, CancellationToken cancellationToken)
    {
        bool text = generator.GetText(0) is not null;
        stdout.Write(text && prompt is not null ? prompt : string.Join(" ", generator.GetSequence(0).ToArray()));
        stdout.Flush();
        while (!generator.IsDone)
        {
            cancellationToken.ThrowIfCancellationRequested();
            generator.GenerateNextToken();
            stdout.Write(text ? generator.GetLastPiece(0) : " " + generator.LastTokens[0]);
            stdout.Flush();
        }

        stdout.WriteLine();
    }

    private static void PrintTiming(TextWriter stderr, IReadOnlyList<GenerationResult> results)
    {
        foreach (var r in results)
        {
            stderr.WriteLine(
                $"{(results.Count > 1 ? $"[{r.Row}] " : "")}{r.NewTokens} tokens ({r.FinishReason}): first after {r.TimeToFirstToken.TotalMilliseconds:F0} ms, " +
                $"then {r.DecodeTokensPerSecond:F1} tokens/s");
        }
    }

    private static void PrintSpeculation(TextWriter stderr, Generator generator)
    {
        if (generator.Speculation is { } s)
        {
            stderr.WriteLine(
                $"speculative: {s.Rounds} verifying steps ({s.MeanDraftLength:F1} draft tokens each, {s.TokensPerRound:F2} tokens per step), " +
                $"{s.PlainSteps} plain; {s.AcceptedTokens} of {s.DraftedTokens} draft tokens accepted ({s.AcceptanceRate:P0})");
        }
    }

    internal static string ToJson(GenerationResult r)
    {
        var ids = new JsonArray();
        foreach (var id in r.Ids)
        {
            ids.Add(id);
        }

        var node = new JsonObject
        {
            ["row"] = r.Row,
            ["ids"] = ids,
            ["prompt_tokens"] = r.PromptLength,
            ["new_tokens"] = r.NewTokens,
            ["text"] = r.Text,
            ["finish_reason"] = FinishName(r.FinishReason),
            ["time_to_first_token_ms"] = Math.Round(r.TimeToFirstToken.TotalMilliseconds, 3),
            ["tokens_per_second"] = Math.Round(r.DecodeTokensPerSecond, 3),
            ["elapsed_ms"] = Math.Round(r.Elapsed.TotalMilliseconds, 3),
        };
        if (r.ConstraintComplete is { } complete)
        {
            node["constraint_complete"] = complete;
        }

        if (r.Prompt != r.Row)
        {
            node["prompt"] = r.Prompt;
        }

        if (r.Score is { } score)
        {
            node["score"] = score;
        }

        if (r.LogProbs is { } logprobs)
        {
            node["logprobs"] = new JsonArray([.. logprobs.Select(t => (JsonNode)new JsonObject
            {
                ["id"] = t.TokenId,
                ["logprob"] = t.LogProb,
                ["processed_logprob"] = t.ProcessedLogProb,
                ["top"] = new JsonArray([.. t.Top.Select(a => (JsonNode)new JsonObject { ["id"] = a.TokenId, ["logprob"] = a.LogProb })]),
            })]);
        }

        return node.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }

    internal static string FinishName(FinishReason reason) => reason switch
    {
        FinishReason.EndOfSequence => "eos",
        FinishReason.StopToken => "stop_token",
        FinishReason.StopString => "stop_string",
        FinishReason.MaxNewTokens => "max_new_tokens",
        FinishReason.ContextFull => "context_full",
        FinishReason.ConstraintComplete => "constraint_complete",
        _ => "none",
    };

    /// <summary>The constraint the options ask for, read and compiled before the model loads (a bad schema fails fast).</summary>
    private OutputConstraint? ReadConstraint(ParseResult parse)
    {
        if (parse.GetValue(_jsonSchema) is { } schemaFile)
        {
            using var schema = JsonInput.ReadFile(schemaFile, "JSON schema file");
            try
            {
                return OutputConstraint.FromJsonSchema(schema.RootElement);
            }
            catch (OnnxGptException e)
            {
                throw new OnnxGptException($"{schemaFile}: {e.Message}", e);
            }
        }

        if (parse.GetValue(_grammar) is { } grammarFile)
        {
            return OutputConstraint.FromGrammar(InputFile.ReadAllText(grammarFile, "grammar file"), grammarFile);
        }

        return parse.GetValue(_jsonObject) ? OutputConstraint.AnyJson : null;
    }

    /// <summary><c>ID:BIAS</c> pairs separated by commas, e.g. <c>50256:-100,13:5</c>.</summary>
    private static (Dictionary<int, double>? Value, string? Error) ParseLogitBias(string text)
    {
        var bias = new Dictionary<int, double>();
        foreach (var pair in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = pair.Split(':');
            if (parts.Length != 2
                || !int.TryParse(parts[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id)
                || !double.TryParse(parts[1], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double value))
            {
                return (null, $"'{pair}' is not ID:BIAS (a token id, a colon, a number), e.g. 13:-100.");
            }

            if (!(value is >= -100 and <= 100))
            {
                return (null, $"the bias of token {id} must be between -100 and 100; found {parts[1]}.");
            }

            bias[id] = value;
        }

        return bias.Count > 0 ? (bias, null) : (null, $"'{text}' names no token; expected ID:BIAS pairs separated by commas.");
    }

    private static string[] ReadPrompts(string path)
    {
        if (!File.Exists(path))
        {
            throw new OnnxGptException($"prompts file '{path}' does not exist.");
        }

        var lines = File.ReadAllLines(path).Where(l => l.Length > 0).ToArray();
        return lines.Length > 0 ? lines : throw new OnnxGptException($"prompts file '{path}' has no prompts; expected one per line.");
    }
}

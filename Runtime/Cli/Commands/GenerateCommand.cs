using System.Text.Json.Nodes;
using System.Text.Json;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Cli.Commands;

/// <summary><c>onnxgpt generate</c>: continue a prompt (or a file of prompts, as one batch), streaming text to stdout.</summary>
public sealed class GenerateCommand : ICommand
{
    public string Name => "generate";

    public string Summary => "generate text from a prompt (or token ids), streamed to stdout";

    public string Usage => """
        usage: onnxgpt generate --model DIR (--prompt TEXT | --ids 1,2,3 | --prompts-file FILE)
                                [--max-new-tokens N] [--greedy] [--temperature T] [--top-k K] [--top-p P]
                                [--repetition-penalty R] [--seed S] [--stop TEXT]... [--truncate left]
                                [--no-cache] [--provider LIST] [--threads N] [--json]
          --model DIR        a model folder (or .onnx file)
          --prompt TEXT      the prompt, encoded with the model's tokenizer
          --ids 1,2,3        the prompt as token ids (for a model without a tokenizer, output is ids too)
          --prompts-file F   one prompt per line, generated together as a batch
          --max-new-tokens N, --temperature T, --top-k K, --top-p P, --repetition-penalty R
                             override the model's generation defaults (top-k 0 and top-p 1 turn those off)
          --greedy           pick the most likely token (same as --temperature 0)
          --seed S           seed of the sampler (default: random, printed on stderr)
          --stop TEXT        stop a sequence when its text contains TEXT (repeatable)
          --truncate left    drop the oldest prompt tokens when the prompt does not fit the context
          --no-cache         recompute the whole sequence every step (slow; for comparison)
        SESSION
          --json             one JSON object per sequence: ids (prompt + generated), text, finish reason, timing
        """.Replace("SESSION", RuntimeArgs.SessionUsage, StringComparison.Ordinal);

    public IReadOnlyCollection<string> Flags => ["greedy", "json", "no-cache", RuntimeArgs.FallbackFlag, RuntimeArgs.OrtWarningsFlag];

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        string modelPath = args.Required("model");
        string? prompt = args.Option("prompt"), idsText = args.Option("ids"), promptsFile = args.Option("prompts-file");
        int? maxNewTokens = args.Int("max-new-tokens"), topK = args.Int("top-k");
        double? temperature = args.Double("temperature"), topP = args.Double("top-p"), penalty = args.Double("repetition-penalty");
        long? seed = args.Long("seed");
        bool greedy = args.Flag("greedy"), json = args.Flag("json"), noCache = args.Flag("no-cache");
        var stops = args.Options("stop");
        var truncate = args.Choice("truncate", "none", "left");
        var session = RuntimeArgs.ReadSession(args);
        args.EnsureAllRead();
        if ((prompt is null ? 0 : 1) + (idsText is null ? 0 : 1) + (promptsFile is null ? 0 : 1) != 1)
        {
            throw new CliUsageException("give exactly one of --prompt, --ids, --prompts-file.");
        }

        if (seed is < 0)
        {
            throw new CliUsageException($"--seed must be 0 or more, not {seed}.");
        }

        using var model = RuntimeArgs.Load(modelPath, session, stderr);
        var defaults = GenerationOptions.FromDefaults(model.GenerationDefaults);
        var options = defaults with
        {
            MaxNewTokens = maxNewTokens ?? defaults.MaxNewTokens,
            DoSample = !greedy && (temperature is > 0 || defaults.DoSample),
            Temperature = temperature ?? defaults.Temperature,
            TopK = topK ?? defaults.TopK,
            TopP = topP ?? defaults.TopP,
            RepetitionPenalty = penalty ?? defaults.RepetitionPenalty,
            Seed = seed is null ? null : (ulong)seed.Value,
            StopStrings = stops,
        };
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new CliUsageException(e.Message);
        }

        var settings = new GeneratorOptions
        {
            UseKvCache = !noCache,
            Truncation = truncate == "left" ? PromptTruncation.Left : PromptTruncation.None,
        };
        using var generator = model.CreateGenerator(options, settings);
        string[]? texts = null;
        if (idsText is not null)
        {
            var ids = RuntimeArgs.ParseIds(idsText, "ids");
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

        if (options.Seed is null && !options.IsGreedy)
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
                        stdout.WriteLine($"--- {r.Row}: {r.FinishReason}");
                        stdout.WriteLine(texts![r.Row] + r.Text);
                    }
                }

                PrintTiming(stderr, results);
                return 0;
            }

            Stream(generator, texts?[0], stdout, cancel.Token);
            PrintTiming(stderr, generator.Results());
            return 0;
        }
        catch (OperationCanceledException)
        {
            stdout.WriteLine();
            stderr.WriteLine("cancelled");
            return 130;
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
        return node.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }

    internal static string FinishName(FinishReason reason) => reason switch
    {
        FinishReason.EndOfSequence => "eos",
        FinishReason.StopToken => "stop_token",
        FinishReason.StopString => "stop_string",
        FinishReason.MaxNewTokens => "max_new_tokens",
        FinishReason.ContextFull => "context_full",
        _ => "none",
    };

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

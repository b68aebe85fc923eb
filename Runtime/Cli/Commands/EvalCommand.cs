using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using OnnxGpt.Cli.Options;
using OnnxGpt.Cli.Progress;
using OnnxGpt.Runtime.Evaluation;

namespace OnnxGpt.Cli.Commands;

/// <summary><c>onnxgpt eval</c>: mean negative log-likelihood and perplexity of a text.</summary>
internal sealed class EvalCommand : CliCommand
{
    private readonly Option<string> _model = CliOption.RequiredText("--model", "DIR", "a model folder (or .onnx file)");

    private readonly Option<string?> _textFile = CliOption.Text("--text-file", "FILE", "UTF-8 text, encoded with the model's tokenizer", "none");

    private readonly Option<int[]?> _ids = CliOption.IntList("--ids", "1,2,3", "token ids", "none", min: 0);

    private readonly Option<int?> _stride = CliOption.OptionalInt("--stride", "N",
        "tokens between the starts of context windows when the text is longer than the context; each token is scored once",
        "half the context", min: 1);

    private readonly SessionOptionGroup _session = new();

    private readonly Option<bool> _json = CliOption.Flag("--json",
        "one JSON object: tokens, windows, mean_nll, perplexity, bits_per_token, seconds");

    public EvalCommand()
        : base("eval", "mean NLL (nats/token) and perplexity of a text, sliding over the context")
    {
        Options.Add(_model);
        Options.Add(_textFile);
        Options.Add(_ids);
        Options.Add(_stride);
        _session.AddTo(this);
        Options.Add(_json);
        Validators.Add(r =>
        {
            if (r.Given(_textFile) == r.Given(_ids))
            {
                r.AddError("give one of --text-file, --ids.");
            }
        });
    }

    protected override int Run(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        string? textFile = parse.GetValue(_textFile);
        int? stride = parse.GetValue(_stride);
        using var model = _session.Load(parse.GetRequiredValue(_model), parse, stderr);
        if (stride is { } s && s > model.Config.ContextLength)
        {
            throw new CliUsageException($"--stride must be from 1 to the model's context length {model.Config.ContextLength}; found {s}.");
        }

        int[] tokens;
        if (parse.GetValue(_ids) is { Length: > 0 } ids)   // Not given, an array option reads as empty.
        {
            tokens = ids;
        }
        else
        {
            if (!File.Exists(textFile))
            {
                throw new OnnxGptException($"text file '{textFile}' does not exist.");
            }

            var tokenizer = model.Tokenizer ?? throw new OnnxGptException($"{model.ModelPath}: the model has no tokenizer to encode the text; use --ids.");
            tokens = tokenizer.Encode(File.ReadAllText(textFile));
        }

        if (tokens.Length < 2)
        {
            throw new OnnxGptException($"the text has {tokens.Length} token(s); scoring needs at least two.");
        }

        var clock = Stopwatch.StartNew();
        PerplexityResult result;
        using (var progress = CliProgress.Start(stderr, "eval", tokens.Length - 1, "tokens"))
        {
            result = Perplexity.Evaluate(model, tokens, stride, progress: progress);
        }

        double seconds = clock.Elapsed.TotalSeconds;
        if (parse.GetValue(_json))
        {
            stdout.WriteLine(new JsonObject
            {
                ["tokens"] = result.Tokens,
                ["windows"] = result.Windows,
                ["mean_nll"] = result.MeanNll,
                ["perplexity"] = result.Perplexity,
                ["bits_per_token"] = result.BitsPerToken,
                ["seconds"] = Math.Round(seconds, 3),
            }.ToJsonString());
        }
        else
        {
            stdout.WriteLine(
                $"{result.Tokens} tokens scored in {result.Windows} window(s) of up to {model.Config.ContextLength}: " +
                $"mean NLL {result.MeanNll:F4} nats/token ({result.BitsPerToken:F4} bits), perplexity {result.Perplexity:F3} ({seconds:F1} s)");
        }

        return ExitCodes.Success;
    }
}

using System.Diagnostics;
using System.Text.Json.Nodes;
using OnnxGpt.Runtime.Evaluation;

namespace OnnxGpt.Cli.Commands;

/// <summary><c>onnxgpt eval</c>: mean negative log-likelihood and perplexity of a text.</summary>
public sealed class EvalCommand : ICommand
{
    public string Name => "eval";

    public string Summary => "mean NLL (nats/token) and perplexity of a text, sliding over the context";

    public string Usage => """
        usage: onnxgpt eval --model DIR (--text-file FILE | --ids 1,2,3) [--stride N] [--provider LIST] [--threads N] [--json]
          --text-file FILE   UTF-8 text, encoded with the model's tokenizer
          --ids 1,2,3        token ids
          --stride N         tokens between the starts of context windows when the text is longer than the
                             context (default half the context); each token is scored once
        SESSION
          --json             one JSON object: tokens, windows, mean_nll, perplexity, bits_per_token, seconds
        """.Replace("SESSION", RuntimeArgs.SessionUsage, StringComparison.Ordinal);

    public IReadOnlyCollection<string> Flags => ["json", RuntimeArgs.FallbackFlag, RuntimeArgs.OrtWarningsFlag];

    public int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        string modelPath = args.Required("model");
        string? textFile = args.Option("text-file"), idsText = args.Option("ids");
        int? stride = args.Int("stride");
        bool json = args.Flag("json");
        var session = RuntimeArgs.ReadSession(args);
        args.EnsureAllRead();
        if ((textFile is null) == (idsText is null))
        {
            throw new CliUsageException("give one of --text-file, --ids.");
        }

        using var model = RuntimeArgs.Load(modelPath, session, stderr);
        if (stride is { } s && (s < 1 || s > model.Config.ContextLength))
        {
            throw new CliUsageException($"--stride must be between 1 and the context length {model.Config.ContextLength}, not {s}.");
        }

        int[] tokens;
        if (idsText is not null)
        {
            tokens = RuntimeArgs.ParseIds(idsText, "ids");
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
        var result = Perplexity.Evaluate(model, tokens, stride);
        double seconds = clock.Elapsed.TotalSeconds;
        if (json)
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

        return 0;
    }
}

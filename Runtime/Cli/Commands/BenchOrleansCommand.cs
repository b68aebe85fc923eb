using System.CommandLine;
using OnnxGpt.Cli.Benchmarking;
using OnnxGpt.Cli.Options;

namespace OnnxGpt.Cli.Commands;

/// <summary>
/// <c>onnxgpt bench orleans --model DIR</c>: the latency an Orleans hop adds per request and per token, against the
/// batch engine in this process (see <see cref="OrleansHopBench"/>). Run it alone on the machine: it times.
/// </summary>
internal sealed class BenchOrleansCommand : CliCommand
{
    private readonly Option<string> _model = CliOption.RequiredText("--model", "DIR", "a fused model folder with a tokenizer (the batch engine needs --graph fused)");

    private readonly Option<string> _prompt = CliOption.Text("--prompt", "TEXT", "the prompt of every request", () => "ROMEO:\nBut soft, what light through yonder window breaks?\n");

    private readonly Option<int> _newTokens = CliOption.Int("--new-tokens", "N", "greedy tokens per request", 32, min: 2);

    private readonly Option<int> _reps = CliOption.Int("--reps", "N", "requests each way (medians reported)", 30, min: 1);

    private readonly SessionOptionGroup _session = new(defaultThreads: 2, threadsDefaultText: "2");

    public BenchOrleansCommand()
        : base("orleans", "the latency an Orleans hop (cluster client to silo over loopback) adds per request and per token, against the in-process batch engine")
    {
        Options.Add(_model);
        Options.Add(_prompt);
        Options.Add(_newTokens);
        Options.Add(_reps);
        _session.AddTo(this);
    }

    protected override int Run(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        using var model = _session.Load(parse.GetRequiredValue(_model), parse, stderr);
        var tokenizer = model.Tokenizer ?? throw new OnnxGptException($"{parse.GetRequiredValue(_model)}: bench orleans needs a model with a tokenizer (conversation turns are text).");
        int[] prompt = tokenizer.Encode(parse.GetRequiredValue(_prompt));
        stdout.WriteLine($"model: {model}; prompt {prompt.Length} tokens");
        OrleansHopBench.Run(model, prompt, parse.GetValue(_newTokens), parse.GetValue(_reps), stdout);
        return ExitCodes.Success;
    }
}

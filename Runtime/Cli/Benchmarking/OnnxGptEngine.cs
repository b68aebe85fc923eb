using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Providers;

namespace OnnxGpt.Cli.Benchmarking;

/// <summary>The OnnxGpt host: <see cref="GptModel"/> and its <see cref="Generator"/>.</summary>
internal sealed class OnnxGptEngine(string folder, int threads) : IBenchEngine
{
    private readonly GptModel _model = GptModel.Load(folder, new SessionSettings { Providers = [new CpuProvider(threads)] });
    private Generator? _generator;

    public string Name => BenchEngines.OnnxGpt;

    public void Start(int[] prompt, int maxLength)
    {
        _generator?.Dispose();
        var options = new GenerationOptions { DoSample = false, MaxNewTokens = maxLength - prompt.Length };
        _generator = _model.CreateGenerator(options, new GeneratorOptions { DecodeText = false, StopAtEndOfSequence = false });
        _generator.Append(prompt);
        _generator.GenerateNextToken();   // runs the prompt and picks the first token
    }

    public void Next() => _generator!.GenerateNextToken();

    public int[] Sequence() => _generator!.GetSequence(0).ToArray();

    public void Dispose()
    {
        _generator?.Dispose();
        _model.Dispose();
    }
}

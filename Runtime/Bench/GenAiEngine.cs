using Microsoft.ML.OnnxRuntimeGenAI;
using OnnxGpt.Cli.Benchmarking;

namespace OnnxGpt.Bench;

/// <summary>
/// ONNX Runtime GenAI on the same folder. Its <c>AppendTokens</c> runs the prompt and each <c>GenerateNextToken</c>
/// picks a token and runs the model on the previous one, so "start" here appends and takes the first token, matching
/// what our host's engine does. Its threads come from the folder's genai_config.json, which the comparison sets.
/// </summary>
internal sealed class GenAiEngine(string folder) : IBenchEngine
{
    private readonly Model _model = new(folder);
    private Generator? _generator;
    private GeneratorParams? _parameters;

    public string Name => "genai";

    public void Start(int[] prompt, int maxLength)
    {
        _generator?.Dispose();
        _parameters?.Dispose();
        _parameters = new GeneratorParams(_model);
        _parameters.SetSearchOption("max_length", maxLength);
        _parameters.SetSearchOption("do_sample", false);
        _generator = new Generator(_model, _parameters);
        _generator.AppendTokens(prompt);
        _generator.GenerateNextToken();
    }

    public void Next() => _generator!.GenerateNextToken();

    public int[] Sequence() => _generator!.GetSequence(0).ToArray();

    public void Dispose()
    {
        _generator?.Dispose();
        _parameters?.Dispose();
        _model.Dispose();
    }
}

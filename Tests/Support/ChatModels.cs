using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter;

namespace OnnxGpt.Tests.Support;

/// <summary>
/// A model to chat with: the real tiny-random-gpt2 checkpoint (5 layers, width 32, a 1000-token byte-level BPE,
/// context 512) exported with its tokenizer. Random weights: the replies are nonsense, but every token is real.
/// </summary>
internal static class ChatModels
{
    /// <summary>Exports the checkpoint into <paramref name="tmp"/> and returns the model folder.</summary>
    public static string ExportTinyGpt2(TempFolder tmp, string name = "chat", ChatTemplateSpec? template = null, OnnxGpt.Exporter.Onnx.GraphOptions? graph = null)
    {
        string source = TestPaths.TinyRandomGpt2;
        var weights = HfCheckpoint.Load(source);
        string folder = tmp.Sub(name);
        GptExporter.Export(weights, folder, new ExportOptions
        {
            Tokenizer = TokenizerDetection.Detect(source, weights.Config.VocabSize),
            TokenizerSourceFolder = source,
            ChatTemplate = template,
            Graph = graph ?? OnnxGpt.Exporter.Onnx.GraphOptions.Portable,
        });
        return folder;
    }
}

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
    /// <summary>
    /// A one-layer GPT (width 16) with GPT-2's own 50257-token tokenizer and end-of-text token, seeded: the whole
    /// GPT-2 vocabulary (tiny-random-gpt2's is trimmed to 1000 tokens and lacks '{') at a few milliseconds a token.
    /// </summary>
    public static string ExportGpt2Vocabulary(TempFolder tmp, string name = "gpt2-vocab", bool fused = false)
    {
        var config = new GptConfig { VocabSize = 50257, ContextLength = 320, Width = 16, Layers = 1, Heads = 2, EosTokenId = 50256, BosTokenId = 50256 };
        return TestModels.Export(TestWeights.Random(config, seed: 15, scale: 0.05), tmp, name, new ExportOptions
        {
            Tokenizer = new TokenizerSpec { Kind = TokenizerSpec.Gpt2Kind },
            Graph = fused ? new OnnxGpt.Exporter.Onnx.GraphOptions { Flavor = OnnxGpt.Exporter.Onnx.GraphFlavor.Fused } : OnnxGpt.Exporter.Onnx.GraphOptions.Portable,
        });
    }

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

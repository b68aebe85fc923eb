using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Tests.Support;

/// <summary>Exports stories260K with one of its tokenizer files, the begin/end ids taken from that file.</summary>
internal static class Stories260KExport
{
    public static string Folder(TempFolder tmp, string name, GraphOptions? graph = null, string tokenizerFile = "tok512.model", GptWeights? weights = null,
        ChatTemplateSpec? chatTemplate = null, GenerationDefaults? defaults = null)
    {
        string data = Path.GetDirectoryName(Stories260K.Checkpoint)!;
        var spec = TokenizerSpec.ForFile(tokenizerFile)!;
        var tokenizer = TokenizerFactory.Create(spec, data);
        var w = weights ?? Stories260K.Weights;
        w = w.WithConfig(w.Config with { BosTokenId = tokenizer.BosTokenId, EosTokenId = tokenizer.EosTokenId });
        string folder = tmp.Sub(name);
        GptExporter.Export(w, folder, new ExportOptions
        {
            Graph = graph ?? GraphOptions.Portable, Tokenizer = spec, TokenizerSourceFolder = data, Source = "stories260K (tinyllamas)",
            ChatTemplate = chatTemplate,
            Generation = defaults ?? new GenerationDefaults(),
        });
        return folder;
    }
}

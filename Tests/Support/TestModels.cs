using Google.Protobuf;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter.Reference;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Onnx.Proto;

namespace OnnxGpt.Tests.Support;

/// <summary>Small models on disk for runtime tests, and the reference's greedy continuation to compare with.</summary>
internal static class TestModels
{
    /// <summary>Exports <paramref name="weights"/> with OnnxGpt's exporter (metadata included) into <c>folder</c>.</summary>
    public static string Export(GptWeights weights, TempFolder tmp, string name = "m", ExportOptions? options = null)
    {
        string folder = tmp.Sub(name);
        GptExporter.Export(weights, folder, options);
        return folder;
    }

    /// <summary>
    /// The small fused model the batch engine's and the decoding step's tests share: random weights of
    /// <paramref name="seed"/>, 4 heads of width 32, 64 tokens of context, exported into a folder of its own and
    /// loaded; disposing it frees the model and the folder.
    /// </summary>
    public static OwnedModel LoadSmallFused(ulong seed)
    {
        var tmp = new TempFolder();
        try
        {
            var weights = TestWeights.Random(TestWeights.Small(heads: 4, width: 32) with { ContextLength = 64 }, seed: seed);
            return new OwnedModel(tmp, OnnxGpt.Runtime.Model.GptModel.Load(Export(weights, tmp, options: new ExportOptions { Graph = new GraphOptions { Flavor = GraphFlavor.Fused } })));
        }
        catch
        {
            tmp.Dispose();
            throw;
        }
    }

    /// <summary>A loaded model and the temporary folder it was exported into.</summary>
    public sealed class OwnedModel(TempFolder folder, OnnxGpt.Runtime.Model.GptModel model) : IDisposable
    {
        public OnnxGpt.Runtime.Model.GptModel Model { get; } = model;

        public void Dispose()
        {
            Model.Dispose();
            folder.Dispose();
        }
    }

    /// <summary>
    /// Writes a graph variant as a model exported elsewhere would be: <c>model.onnx</c> with no OnnxGpt metadata,
    /// and (unless <paramref name="configJson"/> is null) a <c>config.json</c> beside it.
    /// </summary>
    public static string WriteForeign(GptWeights weights, TempFolder tmp, GraphOptions graph, string? configJson, string name = "foreign")
    {
        string folder = tmp.Sub(name);
        Directory.CreateDirectory(folder);
        var model = new ModelProto { IrVersion = GptGraph.IrVersion, ProducerName = "tests", Graph = GptGraph.Build(weights, graph) };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = GptGraph.Opset });
        File.WriteAllBytes(Path.Combine(folder, ModelFolder.ModelFile), model.ToByteArray());
        if (configJson is not null)
        {
            File.WriteAllText(Path.Combine(folder, ModelFolder.ConfigFile), configJson);
        }

        return folder;
    }

    /// <summary>Greedy continuation by the reference forward pass (argmax, lowest id on ties), recomputing each step.</summary>
    public static int[] ReferenceGreedy(GptWeights weights, int[] prompt, int newTokens, int? stopId = null)
    {
        var seq = prompt.Select(t => (long)t).ToList();
        var produced = new List<int>();
        for (int i = 0; i < newTokens && seq.Count < weights.Config.ContextLength + 1; i++)
        {
            var logits = ReferenceGpt.Logits(weights, [seq.ToArray()])[0][^1];
            int best = 0;
            for (int v = 1; v < logits.Length; v++)
            {
                if (logits[v] > logits[best])
                {
                    best = v;
                }
            }

            produced.Add(best);
            seq.Add(best);
            if (best == stopId || seq.Count >= weights.Config.ContextLength)
            {
                break;
            }
        }

        return [.. produced];
    }
}

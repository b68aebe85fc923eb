using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Tests.Support;

/// <summary>
/// A character-level model whose weights are set by hand so that it writes <see cref="Cycle"/> over and over,
/// whatever the prompt: a test fixture for output no trained model gives on demand (markup, a reply that would go
/// on for thousands of tokens).
/// <para>
/// How: every block's output projections are zero, so the residual stream is the token embedding alone; the
/// embedding of character <c>c</c> is a spike on the dimension of the character that follows <c>c</c> in the cycle
/// (any character outside the cycle is followed by the cycle's first), and the untied head reads dimension
/// <c>j</c> into character <c>j</c>'s logit. After the final layer norm the spike is about √C against −1/√C, so
/// the next character wins by a margin of about 35 logits: sampling at temperature 1 picks it too.
/// </para>
/// </summary>
internal static class CyclingModel
{
    /// <summary>What the model writes, repeated. Its characters are distinct (each has one successor).</summary>
    public const string Cycle = "<script>";

    /// <summary>The vocabulary: a newline and printable ASCII, so any ASCII prompt tokenizes.</summary>
    public static readonly string[] Characters = ["\n", .. Enumerable.Range(32, 95).Select(c => ((char)c).ToString())];

    /// <summary>
    /// Exports the model into <paramref name="tmp"/> and returns the folder. <paramref name="layers"/> and
    /// <paramref name="width"/> set how much work each token costs (the output is the same).
    /// </summary>
    public static string Export(TempFolder tmp, int contextLength, int layers = 2, int width = 128, string name = "cycling")
    {
        int vocab = Characters.Length;
        if (width < vocab)
        {
            throw new ArgumentOutOfRangeException(nameof(width), width, $"the width must be at least the vocabulary ({vocab}): one dimension per character.");
        }

        var config = new GptConfig
        {
            VocabSize = vocab, ContextLength = contextLength, Width = width, Layers = layers, Heads = width / 32,
            Activation = Activation.GeluNew, Bias = true, TiedHead = false,
        };
        var tensors = GptWeights.ExpectedShapes(config).ToDictionary(e => e.Key, e => new Tensor(e.Value));
        for (int i = 0; i < layers; i++)
        {
            Fill(tensors[TensorNames.Block(i) + "ln_1.weight"], 1);
            Fill(tensors[TensorNames.Block(i) + "ln_2.weight"], 1);
        }

        Fill(tensors[TensorNames.LnF + ".weight"], 1);
        var wte = tensors[TensorNames.Wte].Data;
        var head = tensors[TensorNames.LmHead].Data;
        for (int c = 0; c < vocab; c++)
        {
            wte[c * width + Next(c)] = 10f;
            head[c * width + c] = 4f;
        }

        string folder = tmp.Sub(name);
        GptExporter.Export(new GptWeights(config, tensors), folder, new ExportOptions
        {
            Tokenizer = new TokenizerSpec { Kind = TokenizerSpec.CharKind, Characters = Characters },
        });
        return folder;
    }

    private static int Next(int id)
    {
        int at = Cycle.IndexOf(Characters[id], StringComparison.Ordinal);
        char next = at < 0 ? Cycle[0] : Cycle[(at + 1) % Cycle.Length];
        return Array.IndexOf(Characters, next.ToString());
    }

    private static void Fill(Tensor tensor, float value) => Array.Fill(tensor.Data, value);
}

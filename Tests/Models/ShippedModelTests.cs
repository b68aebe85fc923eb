using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Evaluation;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;
using OnnxGpt.Training;

namespace OnnxGpt.Tests.Models;

/// <summary>The model the project ships in models/: it loads, generates, and its ONNX export scores text as its trainer does.</summary>
[TestClass]
public sealed class ShippedModelTests
{
    private static string Folder => Path.Combine(TestPaths.RepoRoot, "models", "shakespeare-char");

    private static string Corpus => TestPaths.TinyShakespeare;

    [TestMethod]
    public void LoadsAndGeneratesShakespeareLikeText()
    {
        using var model = GptModel.Load(Folder);
        Assert.AreEqual(TokenizerSpec.CharKind, model.TokenizerSpec!.Kind);
        string text = model.GenerateText("ROMEO:\n", new GenerationOptions { MaxNewTokens = 100, Seed = 1, Temperature = 0.8, TopK = 0 });
        Assert.AreEqual(100, text.Length, $"one character per token, no stop token: [{text}]");
        // Trained text: mostly lowercase letters and spaces, words of plausible length, and lines.
        double letters = text.Count(c => char.IsLetter(c) || c == ' ') / (double)text.Length;
        Assert.IsGreaterThan(0.75, letters, $"expected mostly letters and spaces, got: {text}");
        Assert.Contains('\n', text, $"expected line breaks, got: {text}");
        double meanWord = text.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries).Average(w => w.Length);
        Assert.IsTrue(meanWord is > 2 and < 8, $"mean word length {meanWord:F1}: {text}");
    }

    /// <summary>
    /// The ONNX model's mean NLL over disjoint context windows of the validation split equals the trainer's own loss
    /// over the same windows (the trainer's forward pass in float, loaded from the checkpoint shipped beside it).
    /// </summary>
    [TestMethod]
    [DataRow(16)]
    public void OnnxLossEqualsTheTrainersOnTheValidationSplit(int windows)
    {
        using var model = GptModel.Load(Folder);
        var vocabulary = Trainer.LoadVocabulary(Folder);
        var corpus = TextCorpus.Load(Corpus, 0.9, vocabulary);
        int context = model.Config.ContextLength;
        var tokens = corpus.Validation[..(windows * context + 1)];

        var trained = Trainer.LoadModel(Folder);
        double sum = 0;
        for (int w = 0; w < windows; w++)
        {
            sum += trained.Forward(tokens.AsSpan(w * context, context), tokens.AsSpan(w * context + 1, context), 1, context);
        }

        double trainer = sum / windows;
        var onnx = Perplexity.Evaluate(model, tokens, stride: context);
        Assert.AreEqual(windows * context, onnx.Tokens);
        Console.WriteLine($"{windows} windows: trainer {trainer:F6}, ONNX {onnx.MeanNll:F6}, difference {Math.Abs(trainer - onnx.MeanNll):E2}");
        Assert.AreEqual(trainer, onnx.MeanNll, 1e-4, "ONNX Runtime and the trainer score the same windows alike");
        Assert.IsLessThan(1.70, onnx.MeanNll, "the shipped model meets the 1.70 nats/char bar on these windows");
    }
}

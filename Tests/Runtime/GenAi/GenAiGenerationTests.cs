using GenAiModel = Microsoft.ML.OnnxRuntimeGenAI.Model;
using Microsoft.ML.OnnxRuntimeGenAI;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Exporter.Reference;
using OnnxGpt.Exporter;
using OnnxGpt.Runtime.Tokenization;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.GenAi;

/// <summary>
/// Our exported folders run unchanged in ONNX Runtime GenAI (<c>Microsoft.ML.OnnxRuntimeGenAI</c>), driven by the
/// <c>genai_config.json</c> the exporter writes: greedy generation from token ids (no tokenizer files) gives the
/// tokens of greedy argmax over the reference forward pass.
/// <para>
/// No <c>OgaHandle</c>: disposing one shuts the library down for the whole process, and these tests run in parallel
/// with each other; the process exit releases it.
/// </para>
/// </summary>
[TestClass]
public sealed class GenAiGenerationTests
{
    private const float Tolerance = 1e-4f;

    /// <summary>Vocabulary 53, context 24, 2 layers, 2 heads of size 16; token 52 ends a sequence.</summary>
    private static GptConfig Config => TestWeights.Small(heads: 2, width: 32) with { EosTokenId = 52 };

    private static readonly long[] Prompt = [5, 17, 3, 51, 0, 9];

    [TestMethod]
    [DataRow(GraphFlavor.Portable)]
    [DataRow(GraphFlavor.Fused)]
    public void GreedyTokensEqualReferenceArgmax(GraphFlavor flavor)
    {
        var weights = TestWeights.Random(Config, seed: 41);
        using var tmp = TestPaths.NewTemp();
        string folder = tmp.Sub("m");
        GptExporter.Export(weights, folder, new ExportOptions { Graph = new GraphOptions { Flavor = flavor } });

        // Token ids need no tokenizer: the folder holds only the graph and the two configs.
        CollectionAssert.AreEquivalent(new[] { ModelFolder.ModelFile, ModelFolder.ConfigFile, ModelFolder.GenAiConfigFile },
            Directory.GetFiles(folder).Select(Path.GetFileName).ToArray());
        using var model = new GenAiModel(folder);
        Assert.AreEqual(GenAiConfig.ModelType, model.GetModelType());
        using var generatorParams = Greedy(model);
        using var generator = new Generator(model, generatorParams);
        generator.AppendTokens(Prompt.Select(t => (int)t).ToArray());

        // The prompt's logits, every position (GenAI keeps them as the graph returns them): the reference's numbers.
        var expected = ReferenceGpt.Logits(weights, [Prompt])[0];
        using (var logits = generator.GetOutput("logits"))
        {
            CollectionAssert.AreEqual(new long[] { 1, Prompt.Length, Config.VocabSize }, logits.Shape(), $"{flavor}: logits shape");
            AssertClose(expected, logits.GetData<float>(), $"{flavor}: prompt logits");
        }

        while (!generator.IsDone())
        {
            generator.GenerateNextToken();
        }

        var tokens = generator.GetSequence(0).ToArray().Select(t => (long)t).ToArray();
        var reference = ReferenceGreedy(weights, Prompt, Config.ContextLength);
        Assert.IsGreaterThan(Prompt.Length + 3, reference.Length, "the reference generates a few tokens before any end token");
        CollectionAssert.AreEqual(reference, tokens,
            $"{flavor}: GenAI [{string.Join(", ", tokens)}] vs reference [{string.Join(", ", reference)}]");
    }

    [TestMethod]
    [DataRow(WeightQuantization.Int8)]
    [DataRow(WeightQuantization.Int4)]
    public void QuantizedGreedyTokensEqualOrtArgmax(WeightQuantization quantization)
    {
        // MatMulNBits quantizes activations too, so the float reference is not the yardstick (FusedGraphTests bounds
        // that error); the same file stepped through ONNX Runtime directly, with the cache in place, is.
        var weights = TestWeights.Random(Config with { Width = 64 }, seed: 42);
        using var tmp = TestPaths.NewTemp();
        string folder = tmp.Sub("m");
        var result = GptExporter.Export(weights, folder,
            new ExportOptions { Graph = new GraphOptions { Flavor = GraphFlavor.Fused, Quantization = quantization } });

        using var model = new GenAiModel(folder);
        using var generatorParams = Greedy(model);
        using var generator = new Generator(model, generatorParams);
        generator.AppendTokens(Prompt.Select(t => (int)t).ToArray());
        while (!generator.IsDone())
        {
            generator.GenerateNextToken();
        }

        var tokens = generator.GetSequence(0).ToArray().Select(t => (long)t).ToArray();
        var ort = OrtGreedy(result.ModelPath, Prompt, Config.ContextLength, Config.EosTokenId!.Value);
        Assert.IsGreaterThan(Prompt.Length + 3, ort.Length, "ONNX Runtime generates a few tokens before any end token");
        CollectionAssert.AreEqual(ort, tokens,
            $"{quantization}: GenAI [{string.Join(", ", tokens)}] vs ONNX Runtime [{string.Join(", ", ort)}]");
    }

    [TestMethod]
    [DataRow(GraphFlavor.Portable)]
    [DataRow(GraphFlavor.Fused)]
    public void RightPaddedBatchMatchesReferencePerRow(GraphFlavor flavor)
    {
        var weights = TestWeights.Random(Config, seed: 43);
        using var tmp = TestPaths.NewTemp();
        string folder = tmp.Sub("m");
        GptExporter.Export(weights, folder, new ExportOptions { Graph = new GraphOptions { Flavor = flavor } });

        // GenAI takes a batch as one (B, T) block, shorter rows padded on the right with pad_token_id (our end
        // token), and masks the padding; the fused graph then writes each row's next key at its own length.
        long[][] prompts = [Prompt, [8, 41, 2, 19]];
        int width = prompts.Max(p => p.Length), maxLength = 16;
        int pad = Config.EosTokenId!.Value;
        using var model = new GenAiModel(folder);
        using var generatorParams = Greedy(model);
        generatorParams.SetSearchOption("batch_size", 2);
        generatorParams.SetSearchOption("max_length", maxLength);
        using var generator = new Generator(model, generatorParams);
        generator.AppendTokens(prompts.SelectMany(p => p.Select(t => (int)t).Concat(Enumerable.Repeat(pad, width - p.Length))).ToArray());
        while (!generator.IsDone())
        {
            generator.GenerateNextToken();
        }

        for (int b = 0; b < prompts.Length; b++)
        {
            // Each row is a (B, max_length) block: the prompt, its padding, the new tokens, then padding after its end.
            var row = generator.GetSequence((ulong)b).ToArray().Select(t => (long)t).ToList();
            var generated = row.Skip(width).TakeWhile(t => t != pad);
            var tokens = prompts[b].Concat(generated).ToArray();
            var reference = ReferenceGreedy(weights, prompts[b], maxLength - (width - prompts[b].Length));
            CollectionAssert.AreEqual(reference, tokens,
                $"{flavor} row {b}: GenAI [{string.Join(", ", row)}] vs reference [{string.Join(", ", reference)}]");
        }
    }

    [TestMethod]
    [DataRow(GraphFlavor.Portable)]
    [DataRow(GraphFlavor.Fused)]
    public void HuggingFaceCheckpointRunsWithGenAisOwnTokenizer(GraphFlavor flavor)
    {
        // A real GPT-2 checkpoint folder (head size 8, a 1000-token BPE): exported as `onnxgpt export --hf` does, its
        // folder carries tokenizer.json and tokenizer_config.json, which GenAI's text tokenizer needs.
        string source = TestPaths.TinyRandomGpt2;
        var weights = HfCheckpoint.Load(source);
        using var tmp = TestPaths.NewTemp();
        string folder = tmp.Sub("m");
        GptExporter.Export(weights, folder, new ExportOptions
        {
            Graph = new GraphOptions { Flavor = flavor },
            Tokenizer = TokenizerDetection.Detect(source, weights.Config.VocabSize),
            TokenizerSourceFolder = source,
        });

        using var model = new GenAiModel(folder);
        using var tokenizer = new Tokenizer(model);
        using var sequences = tokenizer.Encode("Hello world, this is");
        long[] prompt = sequences[0].ToArray().Select(t => (long)t).ToArray();
        Assert.IsGreaterThan(1, prompt.Length, "the text encodes to several tokens");
        var ours = TokenizerFactory.Create(TokenizerDetection.Detect(source, weights.Config.VocabSize)!, folder);
        CollectionAssert.AreEqual(ours.Encode("Hello world, this is"), sequences[0].ToArray(), "our tokenizer and GenAI's agree");
        using var generatorParams = Greedy(model);
        generatorParams.SetSearchOption("max_length", prompt.Length + 12);
        using var generator = new Generator(model, generatorParams);
        generator.AppendTokenSequences(sequences);
        while (!generator.IsDone())
        {
            generator.GenerateNextToken();
        }

        var tokens = generator.GetSequence(0).ToArray().Select(t => (long)t).ToArray();
        var reference = ReferenceGreedy(weights, prompt, prompt.Length + 12);
        CollectionAssert.AreEqual(reference, tokens,
            $"{flavor}: GenAI [{string.Join(", ", tokens)}] vs reference [{string.Join(", ", reference)}]");
        StringAssert.StartsWith(tokenizer.Decode(generator.GetSequence(0)), "Hello world, this is");
    }

    private static GeneratorParams Greedy(GenAiModel model)
    {
        var p = new GeneratorParams(model);
        p.SetSearchOption("do_sample", false);
        return p;
    }

    /// <summary>Greedy argmax over the reference, the whole sequence recomputed each step, up to an end token or <paramref name="maxLength"/>.</summary>
    private static long[] ReferenceGreedy(GptWeights weights, long[] prompt, int maxLength)
    {
        var ids = prompt.ToList();
        while (ids.Count < maxLength)
        {
            long next = ArgMax(ReferenceGpt.Logits(weights, [[.. ids]])[0][^1]);
            if (next == weights.Config.EosTokenId)
            {
                break;    // GenAI stops there and leaves the end token out of the sequence
            }

            ids.Add(next);
        }

        return [.. ids];
    }

    /// <summary>Greedy argmax through ONNX Runtime, with the fused graph's cache updated in place.</summary>
    private static long[] OrtGreedy(string modelPath, long[] prompt, int maxLength, int eos)
    {
        using var ort = new FusedOrtGpt(modelPath, batch: 1, capacity: maxLength);
        var ids = prompt.ToList();
        float[] logits = ort.Run([prompt], [prompt.Select(_ => 1L).ToArray()], [prompt.Select((_, i) => (long)i).ToArray()], logitsToKeep: 1);
        while (ids.Count < maxLength)
        {
            long next = ArgMax(logits);
            if (next == eos)
            {
                break;
            }

            ids.Add(next);
            if (ids.Count < maxLength)
            {
                logits = ort.Run([[next]], [Enumerable.Repeat(1L, ids.Count).ToArray()], [[ids.Count - 1]], logitsToKeep: 1);
            }
        }

        return [.. ids];
    }

    private static long ArgMax(IReadOnlyList<float> values)
    {
        int best = 0;
        for (int v = 1; v < values.Count; v++)
        {
            if (values[v] > values[best])
            {
                best = v;
            }
        }

        return best;
    }

    private static void AssertClose(float[][] expected, ReadOnlySpan<float> actual, string what)
    {
        float max = 0;
        int vocab = expected[0].Length;
        for (int t = 0; t < expected.Length; t++)
        {
            for (int v = 0; v < vocab; v++)
            {
                float d = Math.Abs(expected[t][v] - actual[t * vocab + v]);
                max = float.IsNaN(d) ? float.PositiveInfinity : Math.Max(max, d);
            }
        }

        Assert.IsLessThanOrEqualTo(Tolerance, max, $"{what}: max |GenAI - reference| = {max}");
    }
}

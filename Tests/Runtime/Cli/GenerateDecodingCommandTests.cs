using System.Text.Json;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary><c>onnxgpt generate</c>'s beam search, several sequences, log-probabilities and OpenAI's options.</summary>
[TestClass]
public sealed class GenerateDecodingCommandTests
{
    private static (int Code, string Out, string Err) Cli(params string[] args) => ExportCommandTests.Cli(args);

    [TestMethod]
    [DataRow("0,0,0,0,0,52,195,731,321,301,734,620", "131,131,131,181,638,638,638,638")]
    [DataRow("41,554,74,622,206,222,75,223,221,198,224,572", "292,292,292,292,292,292,292,292")]
    [DataRow("0,0,0,52,328,219,328,206,288,227,896,328", "328,669,669,669,669,669,669,669")]
    public void BeamSearchOnTinyRandomGpt2PrintsOnnxRuntimesPublishedSequences(string prompt, string expected)
    {
        // ONNX Runtime's GptBeamSearchFp32 test: 4 beams, max_length 20 (8 new tokens), length_penalty 1.
        using var tmp = TestPaths.NewTemp();
        var (code, _, err) = Cli("export", "--hf", TestPaths.TinyRandomGpt2, "--out", tmp.Sub("m"));
        Assert.AreEqual(0, code, err);
        (code, var output, err) = Cli("generate", "--model", tmp.Sub("m"), "--ids", prompt, "--num-beams", "4", "--max-new-tokens", "8", "--length-penalty", "1", "--json");
        Assert.AreEqual(0, code, err);
        using var json = JsonDocument.Parse(output.Trim());
        var ids = json.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        CollectionAssert.AreEqual(prompt.Split(',').Concat(expected.Split(',')).Select(int.Parse).ToArray(), ids);
        Assert.IsLessThan(0.0, json.RootElement.GetProperty("score").GetDouble());
    }

    [TestMethod]
    public void JsonGivesEachReturnedSequenceWithItsScoreBestFirst()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2), seed: 91);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.Export(weights, tmp);
        var (code, output, err) = Cli("generate", "--model", folder, "--ids", "5,17,3", "--max-new-tokens", "5", "--num-beams", "3",
            "--num-return-sequences", "3", "--length-penalty", "0.5", "--early-stopping", "never", "--json");
        Assert.AreEqual(0, code, err);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.HasCount(3, lines);
        var expected = ReferenceDecoding.BeamSearch(weights, [5, 17, 3],
            new GenerationOptions { NumBeams = 3, NumReturnSequences = 3, MaxNewTokens = 5, LengthPenalty = 0.5, EarlyStopping = BeamEarlyStopping.Never }, []);
        for (int j = 0; j < 3; j++)
        {
            var ids = lines[j].GetProperty("ids").EnumerateArray().Skip(3).Select(e => e.GetInt32()).ToArray();
            CollectionAssert.AreEqual(expected[j].Tokens, ids, $"sequence {j}");
            Assert.AreEqual(expected[j].Score, lines[j].GetProperty("score").GetDouble(), 1e-5, $"sequence {j}");
        }

        // Transformers' current lengths (generated tokens only).
        (code, output, err) = Cli("generate", "--model", folder, "--ids", "5,17,3", "--max-new-tokens", "5", "--num-beams", "3",
            "--num-return-sequences", "2", "--length-penalty", "2", "--beam-length", "generated", "--json");
        Assert.AreEqual(0, code, err);
        var generated = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var expectedGenerated = ReferenceDecoding.BeamSearch(weights, [5, 17, 3],
            new GenerationOptions { NumBeams = 3, NumReturnSequences = 2, MaxNewTokens = 5, LengthPenalty = 2, BeamLength = BeamLength.Generated }, []);
        Assert.HasCount(2, generated);
        for (int j = 0; j < 2; j++)
        {
            CollectionAssert.AreEqual(expectedGenerated[j].Tokens, generated[j].GetProperty("ids").EnumerateArray().Skip(3).Select(e => e.GetInt32()).ToArray(), $"generated lengths, sequence {j}");
            Assert.AreEqual(expectedGenerated[j].Score, generated[j].GetProperty("score").GetDouble(), 1e-6, $"generated lengths, sequence {j}");
        }

        // Samples: three per prompt, with their log-probabilities.
        (code, output, err) = Cli("generate", "--model", folder, "--ids", "5,17,3", "--max-new-tokens", "4", "--num-return-sequences", "3",
            "--seed", "4", "--top-logprobs", "2", "--presence-penalty", "0.5", "--frequency-penalty", "0.5", "--logit-bias", "7:-100,8:2", "--json");
        Assert.AreEqual(0, code, err);
        var samples = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.HasCount(3, samples);
        foreach (var s in samples)
        {
            Assert.AreEqual(4, s.GetProperty("logprobs").GetArrayLength());
            Assert.AreEqual(2, s.GetProperty("logprobs")[0].GetProperty("top").GetArrayLength());
            Assert.IsFalse(s.GetProperty("ids").EnumerateArray().Skip(3).Any(e => e.GetInt32() == 7), "bias -100 bans token 7");
        }
    }

    [TestMethod]
    [DataRow("--num-beams 2 --num-return-sequences 3", "--num-return-sequences (3) must not exceed --num-beams (2)")]
    [DataRow("--length-penalty 2", "apply to beam search")]
    [DataRow("--early-stopping", "apply to beam search")]
    [DataRow("--beam-length generated", "apply to beam search")]
    [DataRow("--num-beams 2 --beam-length prompt", "--beam-length must be one of with-prompt, generated")]
    [DataRow("--num-beams 2 --early-stopping maybe", "--early-stopping must be one of true, false, never")]
    [DataRow("--logit-bias 5=3", "is not ID:BIAS")]
    [DataRow("--logit-bias 5:300", "between -100 and 100")]
    [DataRow("--presence-penalty 3", "--presence-penalty must be")]
    [DataRow("--top-logprobs 21", "--top-logprobs must be")]
    public void BadDecodingOptionsAreUsageErrors(string options, string message)
    {
        var (code, _, err) = Cli(["generate", "--model", "unused", "--ids", "1,2", .. options.Split(' ')]);
        Assert.AreEqual(2, code, err);
        StringAssert.Contains(err, message);
    }
}

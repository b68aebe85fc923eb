using System.Text.Json;
using OnnxGpt.Runtime.Evaluation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Runtime.Generation;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary>The generate, eval and bench commands on small models.</summary>
[TestClass]
public sealed class GenerateCommandTests
{
    private static (int Code, string Out, string Err) Cli(params string[] args) => ExportCommandTests.Cli(args);

    [TestMethod]
    public void GenerateIdsAsJsonEqualsReferenceGreedy()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2), seed: 81);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.Export(weights, tmp);
        var (code, output, err) = Cli("generate", "--model", folder, "--ids", "5,17,3", "--max-new-tokens", "6", "--greedy", "--json");
        Assert.AreEqual(0, code, err);

        using var json = JsonDocument.Parse(output.Trim());
        var ids = json.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        CollectionAssert.AreEqual(new[] { 5, 17, 3 }.Concat(TestModels.ReferenceGreedy(weights, [5, 17, 3], 6)).ToArray(), ids);
        Assert.AreEqual(3, json.RootElement.GetProperty("prompt_tokens").GetInt32());
        Assert.AreEqual(6, json.RootElement.GetProperty("new_tokens").GetInt32());
        Assert.AreEqual("max_new_tokens", json.RootElement.GetProperty("finish_reason").GetString());
        Assert.AreEqual(JsonValueKind.Null, json.RootElement.GetProperty("text").ValueKind, "no tokenizer, no text");
        Assert.IsGreaterThan(0.0, json.RootElement.GetProperty("time_to_first_token_ms").GetDouble());
        Assert.IsGreaterThan(0.0, json.RootElement.GetProperty("tokens_per_second").GetDouble());
    }

    [TestMethod]
    public void OrtWarningsFlagAsksOnnxRuntimeForItsWarnings()
    {
        var group = new OnnxGpt.Cli.Options.SessionOptionGroup();
        var command = new System.CommandLine.RootCommand();
        group.AddTo(command);
        var quiet = group.Read(command.Parse(Array.Empty<string>()));
        Assert.AreEqual(Microsoft.ML.OnnxRuntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, quiet.OnnxRuntimeLogLevel);
        var verbose = group.Read(command.Parse(["--ort-warnings"]));
        Assert.AreEqual(Microsoft.ML.OnnxRuntime.OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING, verbose.OnnxRuntimeLogLevel);

        // And the commands that load a model accept it.
        var weights = TestWeights.Random(TestWeights.Small(heads: 2), seed: 84);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.Export(weights, tmp);
        var (code, _, err) = Cli("generate", "--model", folder, "--ids", "5,17", "--max-new-tokens", "2", "--greedy", "--ort-warnings");
        Assert.AreEqual(0, code, err);
    }

    [TestMethod]
    public void GenerateStreamsThePromptAndTheText()
    {
        using var tmp = TestPaths.NewTemp();
        string expected;
        using (var model = GeneratorTextTests.CharModel(tmp, out _))
        {
            using var generator = model.CreateGenerator(new() { DoSample = false, MaxNewTokens = 8 });
            generator.AppendText("Hello");
            expected = "Hello" + generator.GenerateAll()[0].Text;
        }

        var (code, output, err) = Cli("generate", "--model", tmp.Sub("chars"), "--prompt", "Hello", "--greedy", "--max-new-tokens", "8");
        Assert.AreEqual(0, code, err);
        Assert.AreEqual(expected + Environment.NewLine, output);
        StringAssert.Contains(err, "8 tokens");
    }

    [TestMethod]
    public void PromptsFileRunsAsOneBatchWithOneJsonObjectPerSequence()
    {
        using var tmp = TestPaths.NewTemp();
        string[] prompts = ["Hello there", "ab"];
        var single = new List<string>();
        using (var model = GeneratorTextTests.CharModel(tmp, out _))
        {
            foreach (var p in prompts)
            {
                using var generator = model.CreateGenerator(new() { DoSample = false, MaxNewTokens = 5 });
                generator.AppendText(p);
                single.Add(generator.GenerateAll()[0].Text!);
            }
        }

        File.WriteAllLines(tmp.Sub("prompts.txt"), prompts);
        var (code, output, err) = Cli("generate", "--model", tmp.Sub("chars"), "--prompts-file", tmp.Sub("prompts.txt"), "--greedy",
            "--max-new-tokens", "5", "--json");
        Assert.AreEqual(0, code, err);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.HasCount(2, lines);
        for (int b = 0; b < 2; b++)
        {
            using var json = JsonDocument.Parse(lines[b]);
            Assert.AreEqual(b, json.RootElement.GetProperty("row").GetInt32());
            Assert.AreEqual(single[b], json.RootElement.GetProperty("text").GetString(), $"row {b} in a batch equals row {b} alone");
        }
    }

    [TestMethod]
    public void BadInputExitsWithAMessage()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 82);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.Export(weights, tmp);

        var (code, _, err) = Cli("generate", "--model", folder, "--ids", "1,2,99");
        Assert.AreEqual(1, code);
        StringAssert.Contains(err, "token id 99");

        (code, _, err) = Cli("generate", "--model", folder, "--ids", "1", "--prompt", "x");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "exactly one of");

        (code, _, err) = Cli("generate", "--model", folder, "--ids", "1", "--provider", "abacus");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "abacus");

        (code, _, err) = Cli("generate", "--model", folder, "--ids", "1", "--top-p", "1.5");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "--top-p must be a number in (0, 1]; found 1.5");

        (code, _, err) = Cli("generate", "--model", tmp.Sub("missing"), "--ids", "1");
        Assert.AreEqual(1, code);
        StringAssert.Contains(err, tmp.Sub("missing"));
    }

    [TestMethod]
    public void EvalReportsMeanNllAndPerplexity()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 83);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.Export(weights, tmp);
        var ids = Enumerable.Range(0, 30).Select(i => i * 7 % 53).ToArray();
        var (code, output, err) = Cli("eval", "--model", folder, "--ids", string.Join(",", ids), "--stride", "8", "--json");
        Assert.AreEqual(0, code, err);

        using var model = GptModel.Load(folder);
        var expected = Perplexity.Evaluate(model, ids, 8);
        using var json = JsonDocument.Parse(output.Trim());
        Assert.AreEqual(29, json.RootElement.GetProperty("tokens").GetInt32());
        Assert.AreEqual(expected.Windows, json.RootElement.GetProperty("windows").GetInt32());
        Assert.AreEqual(expected.MeanNll, json.RootElement.GetProperty("mean_nll").GetDouble(), 1e-9);
        Assert.AreEqual(expected.Perplexity, json.RootElement.GetProperty("perplexity").GetDouble(), 1e-6);

        (code, output, err) = Cli("eval", "--model", folder, "--ids", string.Join(",", ids));
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(output, "nats/token");
        StringAssert.Contains(output, "perplexity");
    }

    [TestMethod]
    public void BenchMeasuresEachRun()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 84);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.Export(weights, tmp);
        var (code, output, err) = Cli("bench", "--model", folder, "--prompt-lengths", "4,8", "--new-tokens", "3", "--recompute-tokens", "2", "--json");
        Assert.AreEqual(0, code, err);
        var runs = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.HasCount(4, runs);
        CollectionAssert.AreEqual(new[] { true, true, false, false }, runs.Select(r => r.GetProperty("kv_cache").GetBoolean()).ToArray());
        CollectionAssert.AreEqual(new[] { 4, 8, 4, 8 }, runs.Select(r => r.GetProperty("prompt_tokens").GetInt32()).ToArray());
        foreach (var r in runs)
        {
            Assert.IsGreaterThan(0.0, r.GetProperty("ms_per_token").GetDouble());
            Assert.IsLessThan(1024.0, r.GetProperty("managed_bytes_per_token").GetDouble());
        }

        // A long prompt times the tokens the context leaves room for: 24 - 20 - 1 first - 2 warm-up = 1.
        (code, output, err) = Cli("bench", "--model", folder, "--prompt-lengths", "20", "--new-tokens", "8", "--recompute-tokens", "0", "--json");
        Assert.AreEqual(0, code, err);
        var run = JsonDocument.Parse(output.Trim()).RootElement;
        Assert.AreEqual(1, run.GetProperty("tokens_timed").GetInt32());
        Assert.IsGreaterThan(0.0, run.GetProperty("prompt_tokens_per_second").GetDouble());
        Assert.IsGreaterThanOrEqualTo(run.GetProperty("prefill_ms").GetDouble(), run.GetProperty("ttft_ms").GetDouble());

        (code, _, err) = Cli("bench", "--model", folder, "--prompt-lengths", "22", "--new-tokens", "8");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "context is 24");
    }
}

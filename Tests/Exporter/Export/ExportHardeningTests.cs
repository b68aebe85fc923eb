using System.Diagnostics;
using System.Text.Json.Nodes;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Exporter.Export;

/// <summary>
/// Export options are checked before any weight exists; an export never writes outside its folder, never rewrites its
/// input, and a failed one leaves nothing that looks like a model.
/// </summary>
[TestClass]
public sealed class ExportHardeningTests
{
    private static readonly GptConfig Xl = GptPresets.Get("gpt2-xl");

    private static OnnxGptException InvalidFast(ExportOptions options, string output, GptConfig? config = null)
    {
        var clock = Stopwatch.StartNew();
        var e = Assert.ThrowsExactly<OnnxGptException>(() => options.Validate(output, config ?? Xl));
        Assert.IsTrue(clock.Elapsed < TimeSpan.FromSeconds(2), $"validation took {clock.Elapsed.TotalSeconds:F1} s");
        return e;
    }

    [TestMethod]
    public void ABadBlockSizeFailsBeforeAnyWeightIsBuilt()
    {
        using var temp = new TempFolder();
        var graph = new GraphOptions { Flavor = GraphFlavor.Fused, Quantization = WeightQuantization.Int4, BlockSize = 7 };
        StringAssert.Contains(InvalidFast(new ExportOptions { Graph = graph }, temp.Sub("out")).Message, "block size must be a power of two, at least 16; found 7");
    }

    [TestMethod]
    public void Fp16WithQuantizationFailsFirst()
    {
        using var temp = new TempFolder();
        var graph = new GraphOptions { Flavor = GraphFlavor.Fused, Quantization = WeightQuantization.Int4, Precision = WeightPrecision.Float16 };
        StringAssert.Contains(InvalidFast(new ExportOptions { Graph = graph }, temp.Sub("out")).Message, "--dtype fp16 applies to float weights");
    }

    [TestMethod]
    public void AnOutputThatIsAFileFailsFirst()
    {
        using var temp = new TempFolder();
        string readme = temp.Write("README.md", "# hi"u8.ToArray());
        StringAssert.Contains(InvalidFast(new ExportOptions(), readme).Message, $"--out '{readme}' is a file");
        Assert.AreEqual("# hi", File.ReadAllText(readme));
    }

    [TestMethod]
    public void BadGenerationDefaultsFailFirst()
    {
        using var temp = new TempFolder();
        var options = new ExportOptions { Generation = new GenerationDefaults { MaxNewTokens = -1 } };
        StringAssert.Contains(InvalidFast(options, temp.Sub("out")).Message, "'max_new_tokens' must be 0 or more; found -1");
    }

    /// <summary>A copy of tiny-random-gpt2 with its 1,017-byte Hugging Face config.json.</summary>
    private static string CopyCheckpoint(TempFolder temp, string name = "ckpt")
    {
        string folder = temp.Sub(name);
        Directory.CreateDirectory(folder);
        foreach (var file in Directory.GetFiles(TestPaths.TinyRandomGpt2))
        {
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        }

        return folder;
    }

    [TestMethod]
    public void ExportingACheckpointIntoItselfIsRefusedAndLosesNothing()
    {
        using var temp = new TempFolder();
        string checkpoint = CopyCheckpoint(temp);
        byte[] config = File.ReadAllBytes(Path.Combine(checkpoint, "config.json"));
        var before = Directory.GetFiles(checkpoint).Order().ToArray();

        var (code, _, err) = Cli("export", "--hf", checkpoint, "--out", checkpoint, "--force");
        Assert.AreEqual(1, code, err);
        StringAssert.Contains(err, $"--out '{checkpoint}' is the checkpoint folder the weights come from");
        CollectionAssert.AreEqual(config, File.ReadAllBytes(Path.Combine(checkpoint, "config.json")), "the checkpoint's config.json was rewritten");
        CollectionAssert.AreEqual(before, Directory.GetFiles(checkpoint).Order().ToArray());

        (code, _, err) = Cli("export", "--hf", checkpoint, "--out", temp.Path, "--force");
        Assert.AreEqual(1, code, err);
        StringAssert.Contains(err, "is a folder holding the checkpoint folder the weights come from");

        // A spelling through a link is the same folder.
        HostileFiles.Symlink(temp.Sub("alias"), checkpoint);
        (code, _, err) = Cli("export", "--hf", checkpoint, "--out", temp.Sub("alias"), "--force");
        Assert.AreEqual(1, code, err);
        CollectionAssert.AreEqual(config, File.ReadAllBytes(Path.Combine(checkpoint, "config.json")));
    }

    [TestMethod]
    public void ATokenizerSpecNamingAFileOutsideTheCheckpointIsRefused()
    {
        using var temp = new TempFolder();
        string checkpoint = CopyCheckpoint(temp);
        File.Move(Path.Combine(checkpoint, "vocab.json"), temp.Sub("vocab.json"));
        File.WriteAllText(Path.Combine(checkpoint, TokenizerDetection.SpecFile), """{"kind":"bpe","files":["../vocab.json","merges.txt"]}""");
        string victim = temp.Sub("out");
        var (code, _, err) = Cli("export", "--hf", checkpoint, "--out", Path.Combine(victim, "model"));
        Assert.AreEqual(1, code, err);
        StringAssert.Contains(err, "names '../vocab.json', which is refused: the name steps out with '..'");
        Assert.IsFalse(Directory.Exists(victim), "nothing was written");
    }

    /// <summary>Fails the export part way, as a full disk would, once a few weights are written.</summary>
    private sealed class FailingProgress(int after) : IProgress<string>
    {
        private int _reports;

        public void Report(string value)
        {
            if (++_reports > after)
            {
                throw new IOException("No space left on device (simulated)");
            }
        }
    }

    [TestMethod]
    public void AFailedExportLeavesNoFolderThatLooksValid()
    {
        using var temp = new TempFolder();
        var weights = SeededInit.Create(GptPresets.Get("nano"), 1);
        string output = temp.Sub("m");
        var e = Assert.ThrowsExactly<OnnxGptException>(() => GptExporter.Export(weights, output, new ExportOptions(), new FailingProgress(3)));
        StringAssert.Contains(e.Message, "No space left on device (simulated)");
        Assert.IsFalse(Directory.Exists(output), "a new output folder is removed again when the export fails");

        // Into an existing model folder: the old model stays whole, and no staging folder is left.
        Assert.AreEqual(0, Cli("export", "--preset", "nano", "--seed", "5", "--out", output).Code);
        var before = Directory.GetFiles(output).Order().Select(f => (f, File.ReadAllBytes(f))).ToList();
        Assert.ThrowsExactly<OnnxGptException>(() => GptExporter.Export(weights, output, new ExportOptions { Force = true }, new FailingProgress(3)));
        var after = Directory.GetFiles(output).Order().Select(f => (f, File.ReadAllBytes(f))).ToList();
        Assert.AreEqual(before.Count, after.Count);
        for (int i = 0; i < before.Count; i++)
        {
            Assert.AreEqual(before[i].f, after[i].f);
            CollectionAssert.AreEqual(before[i].Item2, after[i].Item2, before[i].f);
        }

        Assert.IsFalse(Directory.EnumerateDirectories(output).Any(), "the staging folder is removed");
    }

    [TestMethod]
    public void ASuccessfulExportWritesOnlyTheModelFiles()
    {
        using var temp = new TempFolder();
        string output = temp.Sub("m");
        Assert.AreEqual(0, Cli("export", "--preset", "nano", "--out", output).Code);
        var names = Directory.EnumerateFileSystemEntries(output).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();
        CollectionAssert.AreEqual(new[] { "config.json", "genai_config.json", "model.onnx" }, names);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!;
        Assert.AreEqual(GptPresets.Get("nano").Layers, (int)config["n_layer"]!);
    }

    private static (int Code, string Out, string Err) Cli(params string[] args) => OnnxGpt.Tests.Runtime.Cli.ExportCommandTests.Cli(args);
}

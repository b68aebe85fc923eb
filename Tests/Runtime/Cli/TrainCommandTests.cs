using OnnxGpt.Cli;
using OnnxGpt.Contracts;

namespace OnnxGpt.Tests.Runtime.Cli;

[TestClass]
public sealed class TrainCommandTests
{
    [TestMethod]
    public void TrainsResumesAndWritesAnExportableFolder()
    {
        var dir = Path.Combine(Path.GetTempPath(), "onnxgpt-train-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var text = string.Concat(Enumerable.Repeat("To be, or not to be: that is the question.\n", 60));
            var data = Path.Combine(dir, "text.txt");
            File.WriteAllText(data, text);
            var outDir = Path.Combine(dir, "out");
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            int rc = Program.Run(["train", "--data", data, "--preset", "char-tiny", "--steps", "6", "--batch", "4", "--context", "16",
                "--eval-every", "3", "--eval-windows", "4", "--out", outDir, "--sample", "20"], stdout, stderr);
            Assert.AreEqual(0, rc, stderr.ToString());
            StringAssert.Contains(stdout.ToString(), "step      6/6");
            StringAssert.Contains(stdout.ToString(), "val ");

            var config = GptConfig.FromJson(File.ReadAllText(Path.Combine(outDir, "config.json")));
            Assert.AreEqual(text.Distinct().Count(), config.VocabSize);
            Assert.IsNull(config.BosTokenId);
            var spec = TokenizerSpec.FromJson(File.ReadAllText(Path.Combine(outDir, "tokenizer_spec.json")));
            Assert.AreEqual(TokenizerSpec.CharKind, spec.Kind);
            Assert.HasCount(config.VocabSize, spec.Characters!);
            Assert.IsTrue(File.Exists(Path.Combine(outDir, "model.safetensors")));

            stdout = new StringWriter();
            rc = Program.Run(["train", "--data", data, "--resume", outDir, "--steps", "8", "--sample", "0"], stdout, stderr);
            Assert.AreEqual(0, rc, stderr.ToString());
            StringAssert.Contains(stdout.ToString(), "resuming");
            StringAssert.Contains(stdout.ToString(), "step      8/8");

            // The folder is a checkpoint 'onnxgpt export' takes as it is.
            var modelDir = Path.Combine(dir, "model");
            rc = Program.Run(["export", "--hf", outDir, "--out", modelDir], new StringWriter(), stderr);
            Assert.AreEqual(0, rc, stderr.ToString());
            Assert.IsTrue(File.Exists(Path.Combine(modelDir, "model.onnx")), "export wrote no model.onnx");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    public void MissingModelShapeIsAUsageError()
    {
        var stderr = new StringWriter();
        int rc = Program.Run(["train", "--data", "x.txt", "--steps", "5", "--out", "o"], new StringWriter(), stderr);
        Assert.AreEqual(2, rc);
        StringAssert.Contains(stderr.ToString(), "--preset");
    }

    [TestMethod]
    public void MissingDataFileNamesIt()
    {
        var stderr = new StringWriter();
        var missing = Path.Combine(Path.GetTempPath(), "no-such-" + Guid.NewGuid().ToString("N") + ".txt");
        int rc = Program.Run(["train", "--data", missing, "--preset", "char-tiny", "--steps", "5", "--out", "o"], new StringWriter(), stderr);
        Assert.AreEqual(1, rc);
        StringAssert.Contains(stderr.ToString(), missing);
    }
}

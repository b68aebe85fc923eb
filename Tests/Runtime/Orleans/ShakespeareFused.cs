using OnnxGpt.Cli;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Orleans;

/// <summary>
/// The shipped Shakespeare model (models/shakespeare-char, exported with the portable graph) exported again from its
/// checkpoint with the fused graph, which the batch engine needs, by the project's own <c>onnxgpt export</c>.
/// </summary>
internal static class ShakespeareFused
{
    public static string Shipped => Path.Combine(TestPaths.RepoRoot, "models", "shakespeare-char");

    /// <summary>Exports it into <paramref name="tmp"/> and returns the folder.</summary>
    public static string Export(TempFolder tmp)
    {
        string folder = tmp.Sub("shakespeare-fused");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["export", "--checkpoint", Shipped, "--graph", "fused", "--out", folder], stdout, stderr);
        Assert.AreEqual(0, code, $"onnxgpt export failed: {stderr}");
        return folder;
    }
}

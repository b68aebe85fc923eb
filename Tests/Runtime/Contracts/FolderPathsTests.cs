using OnnxGpt.Contracts;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Contracts;

/// <summary>Every file a folder names stays inside the folder, after symbolic links.</summary>
[TestClass]
public sealed class FolderPathsTests
{
    [TestMethod]
    [DataRow("../vocab.json", "steps out with '..'")]
    [DataRow("sub/../../vocab.json", "steps out with '..'")]
    [DataRow("..\\vocab.json", "steps out with '..'")]
    [DataRow("/etc/passwd", "is an absolute path")]
    [DataRow("C:\\Windows\\win.ini", "is an absolute path")]
    [DataRow("", "the name is empty")]
    [DataRow(".", "does not name a file inside the folder")]
    [DataRow("a\0b", "holds a NUL character")]
    public void NamesThatEscapeAreRefused(string name, string why)
    {
        using var temp = new TempFolder();
        var e = Assert.ThrowsExactly<OnnxGptException>(() => FolderPaths.ResolveInside(temp.Path, name, "tokenizer_spec.json: $.files[0]"));
        StringAssert.StartsWith(e.Message, "tokenizer_spec.json: $.files[0] names '");
        StringAssert.Contains(e.Message, why);
        StringAssert.Contains(e.Message, $"relative to '{temp.Path}' that stays inside it");
    }

    [TestMethod]
    [DataRow("vocab.json", "vocab.json")]
    [DataRow("./vocab.json", "vocab.json")]
    [DataRow("sub/vocab.json", "sub/vocab.json")]
    [DataRow("sub/./x/../vocab.json", null)]
    public void PlainNamesResolveInside(string name, string? expected)
    {
        using var temp = new TempFolder();
        if (expected is null)
        {
            Assert.ThrowsExactly<OnnxGptException>(() => FolderPaths.ResolveInside(temp.Path, name, "x"));
            return;
        }

        Assert.AreEqual(Path.Combine(temp.Path, expected.Replace('/', Path.DirectorySeparatorChar)), FolderPaths.ResolveInside(temp.Path, name, "x"));
    }

    [TestMethod]
    public void ALinkInsideThatPointsOutIsRefused()
    {
        using var temp = new TempFolder();
        using var outside = new TempFolder();
        File.WriteAllText(outside.Sub("secret.json"), "{}");
        string folder = temp.Sub("model");
        Directory.CreateDirectory(folder);
        HostileFiles.Symlink(Path.Combine(folder, "tokenizer.json"), outside.Sub("secret.json"));
        HostileFiles.Symlink(Path.Combine(folder, "sub"), outside.Path);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => FolderPaths.ResolveInside(folder, "tokenizer.json", "spec"));
        StringAssert.Contains(e.Message, $"a symbolic link takes it to '{Path.Combine(FolderPaths.RealPath(outside.Path), "secret.json")}'");
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => FolderPaths.ResolveInside(folder, "sub/secret.json", "spec")).Message, "a symbolic link takes it to");
    }

    [TestMethod]
    public void LinksThatStayInsideAndALinkedFolderAreFine()
    {
        using var temp = new TempFolder();
        string real = temp.Sub("real");
        Directory.CreateDirectory(Path.Combine(real, "blobs"));
        File.WriteAllText(Path.Combine(real, "blobs", "abc"), "{}");
        HostileFiles.Symlink(Path.Combine(real, "tokenizer.json"), "blobs/abc");   // as Hugging Face's cache lays out a snapshot
        HostileFiles.Symlink(temp.Sub("alias"), real);
        Assert.AreEqual(Path.Combine(temp.Sub("alias"), "tokenizer.json"), FolderPaths.ResolveInside(temp.Sub("alias"), "tokenizer.json", "spec"));
        Assert.IsTrue(FolderPaths.IsSameOrInside(real, temp.Sub("alias")));
        Assert.IsTrue(FolderPaths.IsSameOrInside(temp.Sub("alias"), Path.Combine(real, "blobs")));
        Assert.IsFalse(FolderPaths.IsSameOrInside(Path.Combine(real, "blobs"), real));
        Assert.IsFalse(FolderPaths.IsSameOrInside(temp.Sub("re"), real), "a prefix of the name is not a parent folder");
    }

    [TestMethod]
    public void ALinkLoopIsAnError()
    {
        using var temp = new TempFolder();
        HostileFiles.Symlink(temp.Sub("a"), temp.Sub("b"));
        HostileFiles.Symlink(temp.Sub("b"), temp.Sub("a"));
        var e = Assert.ThrowsExactly<OnnxGptException>(() => FolderPaths.ResolveInside(temp.Path, "a", "spec"));
        StringAssert.Contains(e.Message, $"more than {FolderPaths.MaxLinkHops} symbolic links");
    }
}

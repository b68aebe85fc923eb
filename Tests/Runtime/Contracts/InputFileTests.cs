using System.Text;
using OnnxGpt.Contracts;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Contracts;

/// <summary>Only regular files are opened: a FIFO, a device or a folder under a file's name is a clear error at once.</summary>
[TestClass]
public sealed class InputFileTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);

    [TestMethod]
    public void AFifoIsRefusedInsteadOfBlocking()
    {
        using var temp = new TempFolder();
        string fifo = temp.Sub("config.json");
        HostileFiles.MakeFifo(fifo);
        Assert.IsFalse(InputFile.IsRegularFile(fifo));
        Assert.IsTrue(InputFile.Exists(fifo));
        var e = HostileFiles.FailsWithin(Limit, () => InputFile.ReadAllText(fifo, "config file"), "reading a FIFO");
        StringAssert.Contains(e.Message, $"{fifo}: expected a regular config file, found a FIFO (named pipe)");
        HostileFiles.FailsWithin(Limit, () => InputFile.OpenRead(fifo).Dispose(), "opening a FIFO");
        HostileFiles.FailsWithin(Limit, () => JsonInput.ReadFile(fifo).Dispose(), "parsing a FIFO");
    }

    [TestMethod]
    public void ADeviceIsRefused()
    {
        if (!File.Exists("/dev/zero"))
        {
            Assert.Inconclusive("no /dev/zero here.");
        }

        var e = HostileFiles.FailsWithin(Limit, () => InputFile.ReadAllBytes("/dev/zero"), "reading /dev/zero");
        StringAssert.Contains(e.Message, "found a character device");
    }

    [TestMethod]
    public void AFolderIsRefused()
    {
        using var temp = new TempFolder();
        Directory.CreateDirectory(temp.Sub("model.onnx"));
        var e = Assert.ThrowsExactly<OnnxGptException>(() => InputFile.OpenHandle(temp.Sub("model.onnx"), "ONNX model file").Dispose());
        StringAssert.Contains(e.Message, "expected a regular ONNX model file, found a folder");
    }

    [TestMethod]
    public void AMissingFileSaysSo()
    {
        using var temp = new TempFolder();
        var e = Assert.ThrowsExactly<OnnxGptException>(() => InputFile.ReadAllBytes(temp.Sub("nope.json"), "tokenizer file"));
        StringAssert.Contains(e.Message, "nope.json: tokenizer file not found.");
    }

    [TestMethod]
    public void ASymlinkToARegularFileIsARegularFile()
    {
        using var temp = new TempFolder();
        string real = temp.Write("real.txt", Encoding.UTF8.GetBytes("hello"));
        HostileFiles.Symlink(temp.Sub("link.txt"), real);
        Assert.IsTrue(InputFile.IsRegularFile(temp.Sub("link.txt")));
        Assert.AreEqual("hello", InputFile.ReadAllText(temp.Sub("link.txt")));
    }

    [TestMethod]
    public void ReadAllTextRefusesInvalidUtf8AndOversizedFiles()
    {
        using var temp = new TempFolder();
        string bad = temp.Write("merges.txt", [(byte)'a', (byte)' ', 0xC3, (byte)'\n']);
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => InputFile.ReadAllText(bad)).Message, "not valid UTF-8 text (the first invalid byte is at offset 2)");
        string big = temp.Write("big.txt", new byte[1000]);
        StringAssert.Contains(Assert.ThrowsExactly<OnnxGptException>(() => InputFile.ReadAllBytes(big, "merges file", 999)).Message, "the merges file is 1000 bytes; expected at most 999 bytes");
        Assert.AreEqual(1000, InputFile.ReadAllBytes(big, "merges file", 1000).Length);
    }
}

namespace OnnxGpt.Tests.Support;

/// <summary>Where tests find the repository, its test data, and scratch folders.</summary>
internal static class TestPaths
{
    public static string RepoRoot { get; } = FindRoot();

    /// <summary>The data sets kept in the repository (<c>Tests/Data</c>; see its README for sources and licences).</summary>
    public static string DataRoot => Path.Combine(RepoRoot, "Tests", "Data");

    /// <summary>The tiny-random-gpt2 checkpoint folder (checked to exist).</summary>
    public static string TinyRandomGpt2 => DataFolder("tiny-random-gpt2");

    /// <summary>The tiny-shakespeare corpus (checked to exist).</summary>
    public static string TinyShakespeare => DataFile("tinyshakespeare", "input.txt");

    /// <summary>
    /// A file under <c>Tests/Data</c>. A missing file fails the test with its path: the data ships with the
    /// repository, so its absence is a broken checkout, never a reason to skip.
    /// </summary>
    public static string DataFile(params string[] parts)
    {
        string path = Path.Combine([DataRoot, .. parts]);
        if (!File.Exists(path))
        {
            Assert.Fail($"test data file {path} is missing: it is part of the repository (see Tests/Data/README.md).");
        }

        return path;
    }

    /// <summary>A folder under <c>Tests/Data</c>, failing the test with its path when it is missing.</summary>
    public static string DataFolder(params string[] parts)
    {
        string path = Path.Combine([DataRoot, .. parts]);
        if (!Directory.Exists(path))
        {
            Assert.Fail($"test data folder {path} is missing: it is part of the repository (see Tests/Data/README.md).");
        }

        return path;
    }

    /// <summary>A new empty folder under the system temp folder, removed by the caller's <c>using</c>.</summary>
    public static TempFolder NewTemp() => new();

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "OnnxGpt.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("cannot find OnnxGpt.sln above the test binaries.");
    }
}

internal sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "onnxgpt-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Writes bytes to a file in the folder and returns its path.</summary>
    public string Write(string name, byte[] bytes)
    {
        string path = Sub(name);
        System.IO.File.WriteAllBytes(path, bytes);
        return path;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

namespace OnnxGpt.Tests.Support;

/// <summary>Where tests find the repository, the shared data beside it, and scratch folders.</summary>
internal static class TestPaths
{
    public static string RepoRoot { get; } = FindRoot();

    /// <summary>The data sets kept beside the project (<c>../shared/data</c> from the repository root).</summary>
    public static string SharedData => Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "data"));

    public static string TinyRandomGpt2 => Path.Combine(SharedData, "tiny-random-gpt2");

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

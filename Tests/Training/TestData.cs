namespace OnnxGpt.Tests.Training;

/// <summary>Finds the shared data folder: <c>../shared/data</c> beside the repository root (the folder with OnnxGpt.sln).</summary>
internal static class TestData
{
    public static string Path(params string[] parts)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(System.IO.Path.Combine(dir.FullName, "OnnxGpt.sln")))
        {
            dir = dir.Parent;
        }

        if (dir is null)
        {
            throw new InvalidOperationException($"no OnnxGpt.sln above {AppContext.BaseDirectory}.");
        }

        var path = System.IO.Path.Combine([dir.FullName, "..", "shared", "data", .. parts]);
        if (!File.Exists(path))
        {
            Assert.Inconclusive($"test data {path} is not present.");
        }

        return path;
    }
}

namespace OnnxGpt.Cli;

/// <summary>
/// The library's messages speak to C# callers ("GeneratorOptions.Truncation = PromptTruncation.Left"); a person at
/// the command line needs the flag instead. Every message the CLI prints from the library passes through
/// <see cref="ForCli"/>, which rewrites the hints it knows. A hint the library rewords stops matching and is then
/// printed as the library wrote it; the CLI tests that trigger each one catch that.
/// </summary>
internal static partial class LibraryMessages
{
    /// <summary>Library wording and what the command line says instead, in the order they are applied.</summary>
    private static readonly (string Library, string Cli)[] Hints =
    [
        ("choose left truncation (GeneratorOptions.Truncation = PromptTruncation.Left)", "pass --truncate left to drop its oldest tokens"),
        ("or allow CPU fallback.", "or pass --allow-cpu-fallback to run on the CPU instead."),
    ];

    /// <summary><paramref name="message"/> with C# API hints replaced by the command-line flags that do the same.</summary>
    public static string ForCli(string message)
    {
        foreach (var (library, cli) in Hints)
        {
            message = message.Replace(library, cli, StringComparison.Ordinal);
        }

        // "--force (ExportOptions.Force)": the flag alone.
        return FlagWithProperty().Replace(message, "$1");
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"(--[a-z][a-z0-9-]*) \([A-Z][A-Za-z]*Options\.[A-Za-z.]+\)")]
    private static partial System.Text.RegularExpressions.Regex FlagWithProperty();
}

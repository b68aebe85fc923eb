namespace OnnxGpt.Contracts;

/// <summary>
/// The one check that a file a model or checkpoint folder names stays inside that folder: a sharded index's shards,
/// the tokenizer files a spec lists, <c>genai_config.json</c>'s decoder file, external-data locations. A name must be
/// relative, free of <c>..</c> segments, NUL and drive or device prefixes, and must still lie inside the folder once
/// every symbolic link on the way is followed (a link inside the folder pointing out of it is refused too).
/// </summary>
public static class FolderPaths
{
    /// <summary>The most symbolic links followed while resolving one path (Linux's own limit is 40).</summary>
    public const int MaxLinkHops = 40;

    /// <summary>
    /// The full path of <paramref name="name"/> inside <paramref name="folder"/>, after checking that it stays there.
    /// The file need not exist; opening it is the caller's business (through <see cref="InputFile"/>).
    /// </summary>
    /// <param name="folder">The model or checkpoint folder.</param>
    /// <param name="name">The relative name found in a file of the folder.</param>
    /// <param name="namedBy">What named it, for the message, e.g. <c>"model.safetensors.index.json: weight_map 'x'"</c>.</param>
    /// <exception cref="OnnxGptException">The name is empty, absolute, has a <c>..</c> segment or a NUL, or resolves outside the folder.</exception>
    public static string ResolveInside(string folder, string? name, string namedBy)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentNullException.ThrowIfNull(namedBy);
        if (string.IsNullOrEmpty(name))
        {
            throw Refused(folder, name, namedBy, "the name is empty");
        }

        if (name.Contains('\0'))
        {
            throw Refused(folder, name, namedBy, "the name holds a NUL character");
        }

        if (Path.IsPathRooted(name) || name.Contains(':'))
        {
            throw Refused(folder, name, namedBy, "the name is an absolute path");
        }

        var segments = name.Split(['/', '\\']);
        if (segments.Any(s => s == ".."))
        {
            throw Refused(folder, name, namedBy, "the name steps out with '..'");
        }

        string root = Path.GetFullPath(folder);
        string lexical = Path.GetFullPath(Path.Combine(root, Path.Combine(segments.Where(s => s.Length > 0 && s != ".").ToArray())));
        if (!IsInside(root, lexical) || PathEquals(root, lexical))
        {
            throw Refused(folder, name, namedBy, "the name does not name a file inside the folder");
        }

        string realRoot = RealPath(root), real = RealPath(lexical);
        if (!IsInside(realRoot, real) || PathEquals(realRoot, real))
        {
            throw Refused(folder, name, namedBy, $"a symbolic link takes it to '{real}'");
        }

        return lexical;
    }

    /// <summary>
    /// Whether <paramref name="path"/> is <paramref name="folder"/> itself or lies below it, both taken as full paths
    /// after symbolic links (so two spellings of one folder compare equal).
    /// </summary>
    public static bool IsSameOrInside(string folder, string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentException.ThrowIfNullOrEmpty(path);
        string f = RealPath(Path.GetFullPath(folder)), p = RealPath(Path.GetFullPath(path));
        return PathEquals(f, p) || IsInside(f, p);
    }

    /// <summary>
    /// The full path with every symbolic link followed, component by component (components that do not exist are kept
    /// as they are). A loop, or more than <see cref="MaxLinkHops"/> links, is an error.
    /// </summary>
    /// <exception cref="OnnxGptException">Too many links (a loop).</exception>
    public static string RealPath(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = Path.GetFullPath(path);
        string root = Path.GetPathRoot(full) ?? "";
        var pending = new Stack<string>(full[root.Length..].Split(Separators, StringSplitOptions.RemoveEmptyEntries).Reverse());
        string current = root;
        int hops = 0;
        while (pending.Count > 0)
        {
            string part = pending.Pop();
            if (part == ".")
            {
                continue;
            }

            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? root;
                continue;
            }

            string next = Path.Combine(current, part);
            string? target = LinkTarget(next);
            if (target is null)
            {
                current = next;
                continue;
            }

            if (++hops > MaxLinkHops)
            {
                throw new OnnxGptException($"{path}: more than {MaxLinkHops} symbolic links on the way (a loop?); expected a path that resolves.");
            }

            // Resolve the link's target from where the link sits, then walk the rest of the path after it.
            string targetFull = Path.IsPathRooted(target) ? target : Path.Combine(current, target);
            string targetRoot = Path.GetPathRoot(targetFull) ?? root;
            foreach (var t in targetFull[targetRoot.Length..].Split(Separators, StringSplitOptions.RemoveEmptyEntries).Reverse())
            {
                pending.Push(t);
            }

            current = Path.IsPathRooted(target) ? targetRoot : current;
        }

        return current;
    }

    private static readonly char[] Separators = [Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar];

    private static string? LinkTarget(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static StringComparison Comparison =>
        OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    private static bool PathEquals(string a, string b) =>
        string.Equals(Path.TrimEndingDirectorySeparator(a), Path.TrimEndingDirectorySeparator(b), Comparison);

    private static bool IsInside(string folder, string path)
    {
        string prefix = Path.TrimEndingDirectorySeparator(folder) + Path.DirectorySeparatorChar;
        return path.StartsWith(prefix, Comparison);
    }

    private static OnnxGptException Refused(string folder, string? name, string namedBy, string why) => new(
        $"{namedBy} names '{name}', which is refused: {why}. Expected a file name relative to '{folder}' that stays inside it.");
}

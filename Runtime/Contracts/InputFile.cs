using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace OnnxGpt.Contracts;

/// <summary>
/// The one way the project opens a file it reads (a checkpoint, a config, a tokenizer file, a model): only a regular
/// file, after symbolic links, is opened. A FIFO, a device, a socket or a folder under a file's name is an
/// <see cref="OnnxGptException"/> naming it, never an open that blocks forever waiting for a writer or reads a device
/// without end. Sizes are bounded: <see cref="ReadAllBytes"/> and <see cref="ReadAllText"/> refuse a file larger than
/// the limit they are given before allocating anything.
/// <para>
/// The file type is read with <c>stat</c> before opening (on Unix through .NET's own native shim, which every .NET
/// installation ships), and checked again on the open handle. Windows has no FIFOs or devices in its file namespace;
/// there only folders and <c>\\.\</c> device paths are refused.
/// </para>
/// </summary>
public static class InputFile
{
    /// <summary>The default limit of <see cref="ReadAllBytes"/> and <see cref="ReadAllText"/>: 256 MiB, far above any config or tokenizer file.</summary>
    public const long DefaultMaxBytes = 256L << 20;

    /// <summary>Whether <paramref name="path"/> names an existing regular file (after symbolic links).</summary>
    public static bool IsRegularFile(string path) => Kind(path) == FileKind.Regular;

    /// <summary>Whether something (a file, a folder, a FIFO, ...) exists at <paramref name="path"/>, after symbolic links.</summary>
    public static bool Exists(string path) => Kind(path) != FileKind.Missing;

    /// <summary>
    /// Checks that <paramref name="path"/> is a regular file; <paramref name="what"/> says what it is for in the message
    /// ("safetensors file", "tokenizer file").
    /// </summary>
    /// <exception cref="OnnxGptException">It does not exist, or is a folder, FIFO, device or socket.</exception>
    public static void EnsureRegular(string path, string what = "file")
    {
        ArgumentNullException.ThrowIfNull(path);
        var kind = Kind(path);
        if (kind == FileKind.Regular)
        {
            return;
        }

        throw kind == FileKind.Missing
            ? new OnnxGptException($"{path}: {what} not found.")
            : new OnnxGptException($"{path}: expected a regular {what}, found {Describe(kind)}; only regular files are read.");
    }

    /// <summary>Opens a regular file for reading (shared read access); see <see cref="EnsureRegular"/>.</summary>
    /// <exception cref="OnnxGptException">The file is missing, not a regular file, or cannot be opened; the message names it.</exception>
    public static FileStream OpenRead(string path, string what = "file", FileOptions options = FileOptions.SequentialScan)
    {
        var handle = OpenHandle(path, what, options);
        try
        {
            return new FileStream(handle, FileAccess.Read, 1 << 16);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Opens a regular file for reading and returns its handle (for positional reads with <see cref="RandomAccess"/>).</summary>
    /// <exception cref="OnnxGptException">The file is missing, not a regular file, or cannot be opened; the message names it.</exception>
    public static SafeFileHandle OpenHandle(string path, string what = "file", FileOptions options = FileOptions.RandomAccess)
    {
        EnsureRegular(path, what);
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, options);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new OnnxGptException($"{path}: {what} not found.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new OnnxGptException($"{path}: cannot open the {what} ({e.Message}).", e);
        }

        // The path could have been replaced between the check and the open: check what was opened.
        var opened = Kind(handle);
        if (opened is not (FileKind.Regular or FileKind.Unknown))
        {
            handle.Dispose();
            throw new OnnxGptException($"{path}: expected a regular {what}, found {Describe(opened)}; only regular files are read.");
        }

        return handle;
    }

    /// <summary>Reads a whole regular file of at most <paramref name="maxBytes"/> bytes.</summary>
    /// <exception cref="OnnxGptException">The file is missing, not regular, larger than the limit, or unreadable.</exception>
    public static byte[] ReadAllBytes(string path, string what = "file", long maxBytes = DefaultMaxBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        using var handle = OpenHandle(path, what, FileOptions.SequentialScan);
        try
        {
            long length = RandomAccess.GetLength(handle);
            if (length > maxBytes || length > Array.MaxLength)
            {
                throw new OnnxGptException(
                    $"{path}: the {what} is {length} bytes; expected at most {Math.Min(maxBytes, Array.MaxLength)} bytes for this kind of file.");
            }

            var bytes = new byte[length];
            int done = 0;
            while (done < bytes.Length)
            {
                int n = RandomAccess.Read(handle, bytes.AsSpan(done), done);
                if (n == 0)
                {
                    throw new OnnxGptException($"{path}: the {what} ended at byte {done} of {length}; it changed while being read.");
                }

                done += n;
            }

            return bytes;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OnnxGptException($"{path}: cannot read the {what} ({e.Message}).", e);
        }
    }

    /// <summary>
    /// Reads a whole regular file as UTF-8 text (a byte-order mark is skipped) of at most <paramref name="maxBytes"/>
    /// bytes; invalid UTF-8 is an error naming the byte offset, not text with replacement characters.
    /// </summary>
    /// <exception cref="OnnxGptException">The file is missing, not regular, too large, unreadable or not UTF-8.</exception>
    public static string ReadAllText(string path, string what = "file", long maxBytes = DefaultMaxBytes)
    {
        var bytes = ReadAllBytes(path, what, maxBytes);
        return DecodeUtf8(bytes, path);
    }

    /// <summary>Decodes UTF-8 (skipping a byte-order mark); invalid bytes are an error naming <paramref name="source"/> and the offset.</summary>
    /// <exception cref="OnnxGptException">The bytes are not valid UTF-8.</exception>
    public static string DecodeUtf8(ReadOnlySpan<byte> bytes, string source)
    {
        if (bytes.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]))
        {
            bytes = bytes[3..];
        }

        if (!System.Text.Unicode.Utf8.IsValid(bytes))
        {
            throw new OnnxGptException($"{source}: not valid UTF-8 text (the first invalid byte is at offset {FirstInvalidUtf8(bytes)}).");
        }

        return Encoding.UTF8.GetString(bytes);
    }

    /// <summary>The offset of the first byte that does not start or continue a valid UTF-8 sequence (the length when all are valid).</summary>
    public static int FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        int position = 0;
        while (position < bytes.Length)
        {
            if (Rune.DecodeFromUtf8(bytes[position..], out _, out int consumed) != System.Buffers.OperationStatus.Done)
            {
                return position;
            }

            position += consumed;
        }

        return position;
    }

    private enum FileKind
    {
        Missing,
        Regular,
        Directory,
        Fifo,
        CharacterDevice,
        BlockDevice,
        Socket,
        Unknown,
    }

    private static string Describe(FileKind kind) => kind switch
    {
        FileKind.Directory => "a folder",
        FileKind.Fifo => "a FIFO (named pipe)",
        FileKind.CharacterDevice => "a character device",
        FileKind.BlockDevice => "a block device",
        FileKind.Socket => "a socket",
        _ => "something that is not a regular file",
    };

    private static FileKind Kind(string path)
    {
        if (string.IsNullOrEmpty(path) || path.Contains('\0'))
        {
            return FileKind.Missing;
        }

        if (OperatingSystem.IsWindows())
        {
            if (path.StartsWith(@"\\.\", StringComparison.Ordinal) || path.StartsWith(@"\\?\GLOBALROOT", StringComparison.OrdinalIgnoreCase))
            {
                return FileKind.CharacterDevice;
            }

            return Directory.Exists(path) ? FileKind.Directory : File.Exists(path) ? FileKind.Regular : FileKind.Missing;
        }

        try
        {
            var status = new byte[StatusBytes];
            byte[] name = Encoding.UTF8.GetBytes(path + "\0");
            return UnixNative.Stat(name, status) == 0 ? FromMode(status) : FileKind.Missing;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return ManagedKind(path);
        }
    }

    private static FileKind Kind(SafeFileHandle handle)
    {
        if (OperatingSystem.IsWindows())
        {
            return FileKind.Unknown;
        }

        try
        {
            var status = new byte[StatusBytes];
            return UnixNative.FStat(handle, status) == 0 ? FromMode(status) : FileKind.Unknown;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return FileKind.Unknown;
        }
    }

    private static FileKind ManagedKind(string path) =>
        Directory.Exists(path) ? FileKind.Directory : File.Exists(path) ? FileKind.Regular : FileKind.Missing;

    // .NET's native shim fills a FileStatus whose first two int32 fields are flags and mode, the mode's type bits
    // normalised to these values on every Unix; the rest of the struct (sizes, times) is not read. The buffer is
    // larger than the struct so that a later, larger struct still fits.
    private const int StatusBytes = 512;
    private const int TypeMask = 0xF000;

    private static FileKind FromMode(byte[] status) => (BitConverter.ToInt32(status, 4) & TypeMask) switch
    {
        0x8000 => FileKind.Regular,
        0x4000 => FileKind.Directory,
        0x1000 => FileKind.Fifo,
        0x2000 => FileKind.CharacterDevice,
        0x6000 => FileKind.BlockDevice,
        0xC000 => FileKind.Socket,
        _ => FileKind.Unknown,
    };

    private static class UnixNative
    {
        private const string Shim = "libSystem.Native";

        [DllImport(Shim, EntryPoint = "SystemNative_Stat")]
        public static extern int Stat(byte[] path, byte[] status);

        [DllImport(Shim, EntryPoint = "SystemNative_FStat")]
        public static extern int FStat(SafeFileHandle handle, byte[] status);
    }
}

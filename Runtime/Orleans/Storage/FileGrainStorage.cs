using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Orleans.Storage;

namespace OnnxGpt.Orleans.Storage;

/// <summary>
/// Grain storage in files: one file per grain under <c>DIRECTORY/STATE-NAME/</c>, written whole to a temporary file
/// and renamed over the old one (a reader never sees half a state), with a version number as the ETag so a stale
/// activation's write is refused (<see cref="InconsistentStateException"/>). For the silos of one machine (or of
/// machines sharing a disk): every silo process must name the same directory. It survives any silo's loss, which the
/// in-memory storage (held in the silos themselves) does not; a production cluster uses a database (see docs/scale-out.md).
/// </summary>
public sealed class FileGrainStorage : IGrainStorage
{
    private readonly string _directory;
    private readonly IGrainStorageSerializer _serializer;

    /// <summary>Storage under <paramref name="directory"/> (created if missing), states serialized by <paramref name="serializer"/>.</summary>
    public FileGrainStorage(string directory, IGrainStorageSerializer serializer)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(serializer);
        _directory = Path.GetFullPath(directory);
        _serializer = serializer;
        System.IO.Directory.CreateDirectory(_directory);
    }

    /// <summary>The directory the states are in.</summary>
    public string Root => _directory;

    /// <inheritdoc/>
    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        string path = PathOf(stateName, grainId);
        if (!File.Exists(path))
        {
            grainState.State = Activator.CreateInstance<T>();
            grainState.ETag = null;
            grainState.RecordExists = false;
            return;
        }

        byte[] bytes = await File.ReadAllBytesAsync(path).ConfigureAwait(false);
        if (bytes.Length < sizeof(long))
        {
            throw new InconsistentStateException($"{path}: a grain state file starts with an 8-byte version; this one has {bytes.Length} bytes. Delete it to forget the grain's state.");
        }

        long version = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        grainState.State = _serializer.Deserialize<T>(new BinaryData(bytes.AsMemory(sizeof(long))));
        grainState.ETag = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
        grainState.RecordExists = true;
    }

    /// <inheritdoc/>
    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        string path = PathOf(stateName, grainId);
        long stored = await VersionAsync(path).ConfigureAwait(false);
        CheckETag(path, stored, grainState.ETag);
        long next = stored + 1;
        var payload = _serializer.Serialize(grainState.State).ToMemory();
        byte[] bytes = new byte[sizeof(long) + payload.Length];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, next);
        payload.Span.CopyTo(bytes.AsSpan(sizeof(long)));
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string temporary = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        await File.WriteAllBytesAsync(temporary, bytes).ConfigureAwait(false);
        File.Move(temporary, path, overwrite: true);
        grainState.ETag = next.ToString(System.Globalization.CultureInfo.InvariantCulture);
        grainState.RecordExists = true;
    }

    /// <inheritdoc/>
    public async Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        string path = PathOf(stateName, grainId);
        CheckETag(path, await VersionAsync(path).ConfigureAwait(false), grainState.ETag);
        File.Delete(path);
        grainState.ETag = null;
        grainState.RecordExists = false;
        grainState.State = Activator.CreateInstance<T>();
    }

    /// <summary>The file of one grain's state: its id's UTF-8 bytes in hex (a SHA-256 of them when long), so any id makes a safe file name.</summary>
    private string PathOf(string stateName, GrainId grainId)
    {
        byte[] id = Encoding.UTF8.GetBytes(grainId.ToString());
        string name = id.Length <= 100 ? Convert.ToHexStringLower(id) : "sha256-" + Convert.ToHexStringLower(SHA256.HashData(id));
        return Path.Combine(_directory, Convert.ToHexStringLower(Encoding.UTF8.GetBytes(stateName)), name + ".state");
    }

    private static async Task<long> VersionAsync(string path)
    {
        if (!File.Exists(path))
        {
            return 0;
        }

        await using var file = File.OpenRead(path);
        byte[] head = new byte[sizeof(long)];
        return await file.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false).ConfigureAwait(false) == head.Length
            ? BinaryPrimitives.ReadInt64LittleEndian(head) : 0;
    }

    private static void CheckETag(string path, long stored, string? etag)
    {
        string expected = stored == 0 ? "none" : stored.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if ((etag ?? "none") != expected)
        {
            throw new InconsistentStateException(
                $"{path}: the grain's state was written by someone else since it was read (stored version {expected}, this activation read {etag ?? "none"}).",
                expected, etag ?? "none");
        }
    }
}

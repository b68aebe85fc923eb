using System.Text;
using System.Text.Json;

namespace OnnxGpt.Contracts;

/// <summary>
/// The one reader of the project's JSON inputs: <c>config.json</c>, <c>genai_config.json</c>, a sharded checkpoint's
/// index, tokenizer files, <c>tokenizer_spec.json</c>, the JSON in a model's metadata and the server's request bodies.
/// Every document goes through the same checks before anything reads a field:
/// <list type="bullet">
/// <item>valid UTF-8 (the first bad byte's offset in the message), a byte-order mark skipped;</item>
/// <item>valid JSON, nested at most <see cref="MaxDepth"/> deep, no comments or trailing commas;</item>
/// <item><b>duplicate keys are refused</b>: an object that names a key twice is an error naming the key and its JSON
/// path, never "first wins" in one reader and "last wins" in another;</item>
/// <item>every string and key decodes to valid UTF-16: an escaped lone surrogate (<c>"\ud83d"</c>) is an error at its
/// path, not an exception when a field is read later.</item>
/// </list>
/// Files are read through <see cref="InputFile"/> (regular files only, at most <see cref="MaxFileBytes"/>). Every
/// error is an <see cref="OnnxGptException"/> that names the file (or source) and the JSON path (<c>$.model.decoder</c>).
/// </summary>
public static class JsonInput
{
    /// <summary>The deepest nesting accepted (objects and arrays).</summary>
    public const int MaxDepth = 64;

    /// <summary>The largest JSON file read: 256 MiB (a large tokenizer.json is tens of MiB).</summary>
    public const long MaxFileBytes = InputFile.DefaultMaxBytes;

    /// <summary>Options for <see cref="JsonSerializer"/> that match this reader's rules.</summary>
    public static JsonSerializerOptions SerializerOptions { get; } = new()
    {
        AllowDuplicateProperties = false,
        MaxDepth = MaxDepth,
        ReadCommentHandling = JsonCommentHandling.Disallow,
        AllowTrailingCommas = false,
    };

    private static readonly JsonDocumentOptions DocumentOptions = new()
    {
        AllowDuplicateProperties = false,
        MaxDepth = MaxDepth,
        CommentHandling = JsonCommentHandling.Disallow,
        AllowTrailingCommas = false,
    };

    /// <summary>Reads and checks a JSON file; <paramref name="what"/> names it in messages ("config file").</summary>
    /// <exception cref="OnnxGptException">The file is missing, not a regular file, too large, or not acceptable JSON.</exception>
    public static JsonDocument ReadFile(string path, string what = "JSON file", long maxBytes = MaxFileBytes) =>
        Parse(InputFile.ReadAllBytes(path, what, maxBytes), path);

    /// <summary>Checks and parses UTF-8 JSON; <paramref name="source"/> names where it came from in messages.</summary>
    /// <exception cref="OnnxGptException">The bytes are not acceptable JSON (see the class summary).</exception>
    public static JsonDocument Parse(ReadOnlyMemory<byte> utf8, string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (utf8.Span.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]))
        {
            utf8 = utf8[3..];
        }

        Check(utf8.Span, source);
        try
        {
            return JsonDocument.Parse(utf8, DocumentOptions);
        }
        catch (JsonException e)
        {
            // Check has seen every token already; this is a second line of defence.
            throw new OnnxGptException($"{source}: not valid JSON ({e.Message}).", e);
        }
    }

    /// <summary>Checks and parses JSON text (e.g. a model's metadata value); a lone surrogate in the text itself is an error.</summary>
    /// <exception cref="OnnxGptException">The text is not acceptable JSON.</exception>
    public static JsonDocument Parse(string text, string source)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Parse(ToUtf8(text, source), source);
    }

    /// <summary>
    /// Checks JSON text with the rules above, then binds it to <typeparamref name="T"/> with <see cref="SerializerOptions"/>.
    /// A JSON <c>null</c> at the top is an error.
    /// </summary>
    /// <exception cref="OnnxGptException">The text is not acceptable JSON or does not fit the type; the message names the path.</exception>
    public static T Deserialize<T>(string text, string source) where T : class
    {
        ArgumentNullException.ThrowIfNull(text);
        byte[] utf8 = ToUtf8(text, source);
        Check(utf8, source);
        try
        {
            return JsonSerializer.Deserialize<T>(utf8, SerializerOptions)
                ?? throw new OnnxGptException($"{source}: expected a JSON object, found null.");
        }
        catch (JsonException e)
        {
            throw new OnnxGptException($"{source}: {Trim(e.Message)}{(e.Path is { } p ? $" (at {p})" : "")}.", e);
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or ArgumentException or FormatException or OverflowException)
        {
            throw new OnnxGptException($"{source}: cannot be read as {typeof(T).Name} ({e.Message}).", e);
        }
    }

    /// <summary>The root of a parsed document, with its source and path for messages.</summary>
    public static JsonField Root(JsonDocument document, string source)
    {
        ArgumentNullException.ThrowIfNull(document);
        return new JsonField(document.RootElement, source, "$");
    }

    private static byte[] ToUtf8(string text, string source)
    {
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetBytes(text);
        }
        catch (EncoderFallbackException e)
        {
            throw new OnnxGptException($"{source}: the text holds a lone surrogate at character {e.Index}; expected valid Unicode text.", e);
        }
    }

    /// <summary>One pass of <see cref="Utf8JsonReader"/> over the whole input: syntax, depth, duplicate keys and string contents.</summary>
    private static void Check(ReadOnlySpan<byte> utf8, string source)
    {
        if (!System.Text.Unicode.Utf8.IsValid(utf8))
        {
            throw new OnnxGptException($"{source}: not valid UTF-8 (the first invalid byte is at offset {InputFile.FirstInvalidUtf8(utf8)}).");
        }

        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions
        {
            MaxDepth = MaxDepth,
            CommentHandling = JsonCommentHandling.Disallow,
            AllowTrailingCommas = false,
        });
        var frames = new List<Frame>();
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                    case JsonTokenType.StartArray:
                        Advance(frames);
                        frames.Add(new Frame(reader.TokenType == JsonTokenType.StartObject));
                        break;
                    case JsonTokenType.EndObject:
                    case JsonTokenType.EndArray:
                        frames.RemoveAt(frames.Count - 1);
                        break;
                    case JsonTokenType.PropertyName:
                        string name = ReadString(ref reader, source, frames, "a key");
                        var frame = frames[^1];
                        if (!frame.Names!.Add(name))
                        {
                            frame.Name = name;
                            throw new OnnxGptException(
                                $"{source}: key '{Show(name)}' appears twice in the object at {PathOf(frames, upToParent: true)}; " +
                                "duplicate keys are refused (which one was meant is not knowable).");
                        }

                        frame.Name = name;
                        break;
                    default:
                        Advance(frames);
                        if (reader.TokenType == JsonTokenType.String && reader.ValueIsEscaped)
                        {
                            ReadString(ref reader, source, frames, "a string");
                        }

                        break;
                }
            }
        }
        catch (JsonException e)
        {
            throw new OnnxGptException(
                $"{source}: not valid JSON at {PathOf(frames, upToParent: false)} (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}): {Trim(e.Message)}.", e);
        }
    }

    private static string ReadString(ref Utf8JsonReader reader, string source, List<Frame> frames, string what)
    {
        try
        {
            return reader.GetString()!;
        }
        catch (InvalidOperationException e)
        {
            throw new OnnxGptException(
                $"{source}: {what} at {PathOf(frames, upToParent: false)} is not valid Unicode ({e.Message}); an escaped lone surrogate such as \\ud83d is refused.", e);
        }
    }

    /// <summary>A value begins in the innermost container: an array counts it (an object's key names it already).</summary>
    private static void Advance(List<Frame> frames)
    {
        if (frames.Count == 0)
        {
            return;
        }

        var frame = frames[^1];
        if (!frame.IsObject)
        {
            frame.Index++;
        }
    }

    private static string PathOf(List<Frame> frames, bool upToParent)
    {
        var path = new StringBuilder("$");
        for (int i = 0; i < frames.Count; i++)
        {
            var frame = frames[i];
            if (upToParent && i == frames.Count - 1)
            {
                break;
            }

            if (frame.IsObject)
            {
                if (frame.Name is { } name)
                {
                    path.Append(JsonField.Segment(name));
                }
            }
            else if (frame.Index >= 0)
            {
                path.Append('[').Append(frame.Index).Append(']');
            }
        }

        return path.ToString();
    }

    private static string Trim(string message)
    {
        int at = message.IndexOf(" Path:", StringComparison.Ordinal);
        if (at < 0)
        {
            at = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        }

        return (at >= 0 ? message[..at] : message).TrimEnd('.', ' ');
    }

    private static string Show(string text) => text.Length <= 60 ? text : text[..57] + "...";

    private sealed class Frame(bool isObject)
    {
        public bool IsObject { get; } = isObject;

        public HashSet<string>? Names { get; } = isObject ? new HashSet<string>(StringComparer.Ordinal) : null;

        public string? Name { get; set; }

        public int Index { get; set; } = -1;
    }
}

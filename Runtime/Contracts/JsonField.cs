using System.Globalization;
using System.Text.Json;

namespace OnnxGpt.Contracts;

/// <summary>
/// A JSON value read by <see cref="JsonInput"/>, with the file it came from and its JSON path, so that every typed read
/// that fails says where: <c>config.json: $.n_layer: expected an integer in [1, 10000], found 1e9.</c>
/// </summary>
public readonly struct JsonField
{
    /// <summary>A value at <paramref name="path"/> (<c>$</c> for the root) of <paramref name="source"/>.</summary>
    public JsonField(JsonElement element, string source, string path)
    {
        Element = element;
        Source = source;
        Path = path;
    }

    /// <summary>The value.</summary>
    public JsonElement Element { get; }

    /// <summary>The file or source it came from.</summary>
    public string Source { get; }

    /// <summary>Its JSON path, e.g. <c>$.model.decoder.filename</c>.</summary>
    public string Path { get; }

    /// <summary>The kind of value.</summary>
    public JsonValueKind Kind => Element.ValueKind;

    /// <summary>A member of this object, or null when it is absent or JSON <c>null</c>.</summary>
    /// <exception cref="OnnxGptException">This value is not an object.</exception>
    public JsonField? Get(string name)
    {
        ExpectKind(JsonValueKind.Object, "an object");
        return Element.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null
            ? new JsonField(value, Source, Path + Segment(name))
            : null;
    }

    /// <summary>A member of this object that must be there (and not null).</summary>
    /// <exception cref="OnnxGptException">This is not an object, or the member is missing.</exception>
    public JsonField Require(string name) =>
        Get(name) ?? throw new OnnxGptException($"{Source}: required field '{Path + Segment(name)}' is missing.");

    /// <summary>The members of this object, in document order.</summary>
    /// <exception cref="OnnxGptException">This value is not an object.</exception>
    public IEnumerable<(string Name, JsonField Value)> Properties()
    {
        ExpectKind(JsonValueKind.Object, "an object");
        var (source, path) = (Source, Path);
        return Element.EnumerateObject().Select(p => (p.Name, new JsonField(p.Value, source, path + Segment(p.Name))));
    }

    /// <summary>The items of this array, in order.</summary>
    /// <exception cref="OnnxGptException">This value is not an array.</exception>
    public IEnumerable<JsonField> Items()
    {
        ExpectKind(JsonValueKind.Array, "an array");
        var (source, path) = (Source, Path);
        return Element.EnumerateArray().Select((e, i) => new JsonField(e, source, $"{path}[{i}]"));
    }

    /// <summary>Number of items of this array.</summary>
    public int Count
    {
        get
        {
            ExpectKind(JsonValueKind.Array, "an array");
            return Element.GetArrayLength();
        }
    }

    /// <summary>This value as a string.</summary>
    public string GetString()
    {
        ExpectKind(JsonValueKind.String, "a string");
        return Element.GetString()!;
    }

    /// <summary>This value as a whole number in [<paramref name="min"/>, <paramref name="max"/>] (an integral JSON number such as 12 or 12.0).</summary>
    public long GetInt64(long min = long.MinValue, long max = long.MaxValue) =>
        ReadInteger(min, max, min == long.MinValue && max == long.MaxValue);

    /// <summary>This value as a whole number in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public int GetInt32(int min = int.MinValue, int max = int.MaxValue) =>
        (int)ReadInteger(min, max, min == int.MinValue && max == int.MaxValue);

    private long ReadInteger(long min, long max, bool fullRange)
    {
        string range = fullRange ? "an integer" : $"an integer in [{min}, {max}]";
        if (Kind == JsonValueKind.Number)
        {
            if (Element.TryGetInt64(out long l) && l >= min && l <= max)
            {
                return l;
            }

            if (Element.TryGetDouble(out double d) && d == Math.Floor(d) && d >= min && d <= max && Math.Abs(d) < 9e15)
            {
                return (long)d;
            }

            if (Element.TryGetDouble(out d) && d == Math.Floor(d))
            {
                range = $"an integer in [{min}, {max}]";   // a whole number, but out of range: say which range
            }
        }

        throw Error(range);
    }

    /// <summary>This value as a finite number.</summary>
    public double GetDouble()
    {
        if (Kind == JsonValueKind.Number && Element.TryGetDouble(out double d) && double.IsFinite(d))
        {
            return d;
        }

        throw Error("a finite number");
    }

    /// <summary>This value as true or false.</summary>
    public bool GetBoolean() => Kind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw Error("true or false"),
    };

    /// <summary>An error at this value: <c>{source}: {path}: expected {expected}, found {value}.</c></summary>
    public OnnxGptException Error(string expected) =>
        new($"{Source}: {Path}: expected {expected}, found {Show(Element)}.");

    /// <summary>A short rendering of a value for messages (at most 80 characters).</summary>
    public static string Show(JsonElement element)
    {
        string text = element.ValueKind == JsonValueKind.Undefined ? "nothing" : element.GetRawText();
        return text.Length <= 80 ? text : text[..77] + "...";
    }

    /// <summary>The path segment of a key: <c>.name</c>, or <c>['a b']</c> when the key is not a plain identifier.</summary>
    public static string Segment(string name) =>
        name.Length > 0 && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_')
            ? "." + name
            : "['" + Escape(name) + "']";

    private static string Escape(string name)
    {
        var s = name.Length <= 60 ? name : name[..57] + "...";
        return string.Concat(s.Select(c => c is '\'' or '\\' ? "\\" + c : char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString(CultureInfo.InvariantCulture)));
    }

    private void ExpectKind(JsonValueKind kind, string what)
    {
        if (Kind != kind)
        {
            throw Error(what);
        }
    }
}

using System.Text.Json;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Tokenization;

/// <summary>
/// Reads Hugging Face byte-level BPE tokenizer files: <c>vocab.json</c> + <c>merges.txt</c>, or a
/// <c>tokenizer.json</c> whose model is BPE. Only the GPT-2 flavour is accepted (byte-level pre-tokenizer without
/// an added prefix space, no normalizer, no subword prefix or suffix, no byte fallback); anything else is an
/// <see cref="OnnxGptException"/> naming the field, rather than a tokenizer that encodes differently from the
/// one the model was trained with.
/// </summary>
internal static class HuggingFaceBpeFiles
{
    /// <summary>A vocabulary, merges in priority order (<c>"left right"</c>) and the added tokens split out of text.</summary>
    public sealed record Contents(
        IReadOnlyDictionary<string, int> Vocabulary,
        IReadOnlyList<string> Merges,
        IReadOnlyDictionary<string, int> AddedTokens);

    /// <summary>GPT-2's end-of-text marker, treated as an added token when the vocabulary has it (as Hugging Face's GPT2Tokenizer does).</summary>
    public const string EndOfText = "<|endoftext|>";

    public static Contents ReadVocabAndMerges(string vocabPath, string mergesPath)
    {
        var vocabulary = ReadVocabJson(vocabPath);
        var merges = ReadMergesTxt(mergesPath);
        var added = new Dictionary<string, int>();
        if (vocabulary.TryGetValue(EndOfText, out var endOfText))
        {
            added[EndOfText] = endOfText;
        }

        return new Contents(vocabulary, merges, added);
    }

    public static Dictionary<string, int> ReadVocabJson(string path)
    {
        using var document = ParseJson(path);
        return ReadVocabulary(document.RootElement, path, "the root");
    }

    /// <summary>
    /// One merge per line, <c>left right</c>; the first line is skipped when it is a <c>#version</c> comment, and
    /// blank lines are ignored.
    /// </summary>
    public static List<string> ReadMergesTxt(string path)
    {
        var lines = ReadAllLines(path);
        var merges = new List<string>(lines.Length);
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r');
            if (line.Length == 0 || (i == 0 && line.StartsWith('#')))
            {
                continue;
            }

            var parts = line.Split(' ');
            if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0)
            {
                throw new OnnxGptException($"{path} line {i + 1}: expected a merge 'left right' (two tokens and one space), found '{line}'.");
            }

            merges.Add(line);
        }

        return merges;
    }

    public static Contents ReadTokenizerJson(string path)
    {
        using var document = ParseJson(path);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new OnnxGptException($"{path}: expected a JSON object, found {root.ValueKind}.");
        }

        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
        {
            throw new OnnxGptException($"{path}: field 'model' is missing; expected the tokenizer model object.");
        }

        var type = OptionalString(model, "type", path, "model.type");
        if (type is not null && type != "BPE")
        {
            throw new OnnxGptException($"{path}: field 'model.type' is '{type}'; expected 'BPE' (byte-level BPE is the only tokenizer.json model supported).");
        }

        foreach (var field in (string[])["continuing_subword_prefix", "end_of_word_suffix"])
        {
            if (OptionalString(model, field, path, $"model.{field}") is { Length: > 0 } value)
            {
                throw new OnnxGptException($"{path}: field 'model.{field}' is '{value}'; expected null or empty (GPT-2 byte-level BPE has none).");
            }
        }

        if (model.TryGetProperty("byte_fallback", out var fallback) && fallback.ValueKind == JsonValueKind.True)
        {
            throw new OnnxGptException($"{path}: field 'model.byte_fallback' is true; expected false (byte fallback is for SentencePiece-style BPE, not GPT-2 byte-level BPE).");
        }

        if (root.TryGetProperty("normalizer", out var normalizer) && normalizer.ValueKind != JsonValueKind.Null)
        {
            throw new OnnxGptException($"{path}: field 'normalizer' is {Summarize(normalizer)}; expected null (GPT-2 byte-level BPE does not normalize).");
        }

        CheckPreTokenizer(root, path);

        if (!model.TryGetProperty("vocab", out var vocabElement))
        {
            throw new OnnxGptException($"{path}: field 'model.vocab' is missing; expected an object of token -> id.");
        }

        var vocabulary = ReadVocabulary(vocabElement, path, "'model.vocab'");
        var merges = ReadMerges(model, path);
        var added = ReadAddedTokens(root, path);
        return new Contents(vocabulary, merges, added);
    }

    private static void CheckPreTokenizer(JsonElement root, string path)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
        {
            throw new OnnxGptException($"{path}: field 'pre_tokenizer' is missing or null; expected {{\"type\": \"ByteLevel\"}} (GPT-2 byte-level BPE).");
        }

        var type = OptionalString(pre, "type", path, "pre_tokenizer.type");
        if (type != "ByteLevel")
        {
            throw new OnnxGptException($"{path}: field 'pre_tokenizer.type' is '{type}'; expected 'ByteLevel' (GPT-2 byte-level BPE).");
        }

        if (pre.TryGetProperty("add_prefix_space", out var prefix) && prefix.ValueKind == JsonValueKind.True)
        {
            throw new OnnxGptException($"{path}: field 'pre_tokenizer.add_prefix_space' is true; expected false (as GPT-2).");
        }

        if (pre.TryGetProperty("use_regex", out var regex) && regex.ValueKind == JsonValueKind.False)
        {
            throw new OnnxGptException($"{path}: field 'pre_tokenizer.use_regex' is false; expected true (GPT-2 splits text with its regex before BPE).");
        }
    }

    private static Dictionary<string, int> ReadVocabulary(JsonElement element, string path, string where)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new OnnxGptException($"{path}: {where} is {element.ValueKind}; expected an object of token -> id.");
        }

        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var property in element.EnumerateObject())
        {
            if (property.Value.ValueKind != JsonValueKind.Number || !property.Value.TryGetInt32(out var id) || id < 0)
            {
                throw new OnnxGptException($"{path}: token '{property.Name}' in {where} has id {property.Value}; expected a non-negative integer.");
            }

            if (!vocabulary.TryAdd(property.Name, id))
            {
                throw new OnnxGptException($"{path}: token '{property.Name}' appears twice in {where}; expected unique tokens.");
            }
        }

        return vocabulary;
    }

    /// <summary>Merges as <c>"left right"</c> strings or as <c>["left", "right"]</c> pairs (newer tokenizer.json files).</summary>
    private static List<string> ReadMerges(JsonElement model, string path)
    {
        if (!model.TryGetProperty("merges", out var element) || element.ValueKind != JsonValueKind.Array)
        {
            throw new OnnxGptException($"{path}: field 'model.merges' is missing or not an array; expected the BPE merges.");
        }

        var merges = new List<string>(element.GetArrayLength());
        var index = 0;
        foreach (var merge in element.EnumerateArray())
        {
            string? text = null;
            if (merge.ValueKind == JsonValueKind.String)
            {
                text = merge.GetString();
                if (text?.Split(' ') is not [{ Length: > 0 }, { Length: > 0 }])
                {
                    text = null;
                }
            }
            else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
                     && merge[0].ValueKind == JsonValueKind.String && merge[0].GetString() is { Length: > 0 } left
                     && merge[1].ValueKind == JsonValueKind.String && merge[1].GetString() is { Length: > 0 } right
                     && !left.Contains(' ') && !right.Contains(' '))
            {
                text = $"{left} {right}";
            }

            if (text is null)
            {
                throw new OnnxGptException($"{path}: model.merges[{index}] is {Summarize(merge)}; expected \"left right\" or [\"left\", \"right\"] (tokens without spaces).");
            }

            merges.Add(text);
            index++;
        }

        return merges;
    }

    private static Dictionary<string, int> ReadAddedTokens(JsonElement root, string path)
    {
        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        if (!root.TryGetProperty("added_tokens", out var element) || element.ValueKind == JsonValueKind.Null)
        {
            return added;
        }

        if (element.ValueKind != JsonValueKind.Array)
        {
            throw new OnnxGptException($"{path}: field 'added_tokens' is {element.ValueKind}; expected an array.");
        }

        var index = 0;
        foreach (var token in element.EnumerateArray())
        {
            if (token.ValueKind != JsonValueKind.Object
                || !token.TryGetProperty("id", out var idElement) || !idElement.TryGetInt32(out var id) || id < 0
                || !token.TryGetProperty("content", out var contentElement) || contentElement.ValueKind != JsonValueKind.String
                || contentElement.GetString() is not { Length: > 0 } content)
            {
                throw new OnnxGptException($"{path}: added_tokens[{index}] is {Summarize(token)}; expected {{\"id\": non-negative integer, \"content\": non-empty text}}.");
            }

            if (!added.TryAdd(content, id))
            {
                throw new OnnxGptException($"{path}: added token '{content}' appears twice in 'added_tokens'.");
            }

            index++;
        }

        return added;
    }

    private static string? OptionalString(JsonElement obj, string name, string path, string field)
    {
        if (!obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : throw new OnnxGptException($"{path}: field '{field}' is {value.ValueKind}; expected a string.");
    }

    private static string Summarize(JsonElement element)
    {
        var text = element.GetRawText();
        return text.Length <= 80 ? text : text[..77] + "...";
    }

    /// <summary>The largest tokenizer file read (GPT-2's tokenizer.json is 1.4 MiB; large vocabularies reach tens of MiB).</summary>
    public const long MaxFileBytes = 256L << 20;

    private static JsonDocument ParseJson(string path) => JsonInput.ReadFile(path, "tokenizer file", MaxFileBytes);

    private static string[] ReadAllLines(string path) => InputFile.ReadAllText(path, "tokenizer file", MaxFileBytes).Split('\n');
}

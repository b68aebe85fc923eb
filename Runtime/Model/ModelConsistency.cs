using System.Globalization;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Runtime.Model;

/// <summary>
/// The load-time check that a model folder's parts agree with each other, so a mismatch is one clear message when
/// the model loads rather than a crash once generation samples an id the tokenizer lacks: the graph and the config
/// (layers, heads, head size, vocabulary: <see cref="GptModel"/> checks those against the signature), the tokenizer
/// and the vocabulary (every id the model can generate has a text), the special ids (inside the vocabulary; the plain metadata
/// keys equal to the config's), the generation defaults (within the sampler's ranges) and the config files beside the
/// model (the same shape as the one in use).
/// </summary>
internal static class ModelConsistency
{
    /// <summary>Checks the parts; <paramref name="tokenizer"/> is the model's tokenizer, already built, or null.</summary>
    /// <exception cref="OnnxGptException">Two parts disagree; the message names both, with their values.</exception>
    public static void Check(string modelPath, GptConfig config, string configSource, ITextTokenizer? tokenizer,
        IReadOnlyDictionary<string, string> metadata, GenerationDefaults defaults)
    {
        defaults.Validate($"{modelPath}: the generation defaults");
        CheckSpecialIds(modelPath, config, configSource, metadata);
        if (tokenizer is not null)
        {
            CheckTokenizer(modelPath, config, configSource, tokenizer);
        }

        CheckFilesBeside(modelPath, config, configSource);
    }

    private static void CheckTokenizer(string modelPath, GptConfig config, string configSource, ITextTokenizer tokenizer)
    {
        // Smaller than the vocabulary: the model could generate ids without text, and the first one would fail
        // mid-generation. Larger is allowed (a small model may reuse GPT-2's tokenizer): every id fed to the model is
        // checked against the vocabulary when it is appended, with a clear message.
        if (tokenizer.VocabularySize < config.VocabSize)
        {
            throw new OnnxGptException(
                $"{modelPath}: the {tokenizer.Kind} tokenizer has {tokenizer.VocabularySize} tokens but {configSource} says vocab_size is " +
                $"{config.VocabSize}; the model could generate ids {tokenizer.VocabularySize}..{config.VocabSize - 1}, which have no text. " +
                "Export the model with the tokenizer it was trained with.");
        }

        for (int id = 0; id < config.VocabSize; id++)
        {
            try
            {
                _ = tokenizer.GetTokenBytes(id);
            }
            catch (ArgumentOutOfRangeException)
            {
                throw new OnnxGptException(
                    $"{modelPath}: token id {id} has no text in the {tokenizer.Kind} tokenizer (its ids leave a gap), but the model's " +
                    $"vocabulary of {config.VocabSize} includes it; the model could generate it. Give every id a token.");
            }
        }
    }

    private static void CheckSpecialIds(string modelPath, GptConfig config, string configSource, IReadOnlyDictionary<string, string> metadata)
    {
        foreach (var (key, value) in new[] { (MetadataKeys.BosTokenId, config.BosTokenId), (MetadataKeys.EosTokenId, config.EosTokenId) })
        {
            if (!metadata.TryGetValue(key, out var text))
            {
                continue;
            }

            if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int id) || id < 0 || id >= config.VocabSize)
            {
                throw new OnnxGptException($"{modelPath}: metadata '{key}' is '{text}'; expected a token id in [0, {config.VocabSize}).");
            }

            if (value is { } expected && expected != id)
            {
                throw new OnnxGptException($"{modelPath}: metadata '{key}' is {id} but {configSource} says {key} is {expected}; they must agree.");
            }
        }
    }

    /// <summary>A <c>config.json</c> or <c>genai_config.json</c> beside the model must describe the same shape as the config in use.</summary>
    private static void CheckFilesBeside(string modelPath, GptConfig config, string configSource)
    {
        string folder = Path.GetDirectoryName(modelPath) ?? ".";
        string hf = Path.Combine(folder, ModelFolder.ConfigFile);
        if (hf != configSource && InputFile.Exists(hf))
        {
            Compare(GptConfig.FromFile(hf), hf);
        }

        string genai = Path.Combine(folder, ModelFolder.GenAiConfigFile);
        if (genai != configSource && InputFile.Exists(genai))
        {
            Compare(ModelDescription.ReadGenAiConfig(genai), genai);
        }

        void Compare(GptConfig other, string file)
        {
            foreach (var (field, mine, theirs) in new[]
            {
                ("vocab_size", config.VocabSize, other.VocabSize),
                ("n_positions", config.ContextLength, other.ContextLength),
                ("n_embd", config.Width, other.Width),
                ("n_layer", config.Layers, other.Layers),
                ("n_head", config.Heads, other.Heads),
            })
            {
                if (mine != theirs)
                {
                    throw new OnnxGptException(
                        $"{modelPath}: {file} says {field} is {theirs} but {configSource} says {mine}; the folder's files describe " +
                        "different models. Export the folder again, or remove the stale file.");
                }
            }
        }
    }
}

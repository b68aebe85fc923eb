using System.Globalization;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Runtime.Model;

/// <summary>
/// The load-time check that a model folder's parts agree with each other, so a mismatch is one clear message when
/// the model loads rather than a crash once generation samples an id the tokenizer lacks: the shape every part states
/// (<see cref="CheckShape"/>: the graph's declared layers, heads, head size and vocabulary, and every config file beside
/// the model, complete or not, OnnxGpt's own or another convention's), the tokenizer and the vocabulary (every id the
/// model can generate has a text), the special ids (inside the vocabulary; the plain metadata keys equal to the
/// config's) and the generation defaults (within the sampler's ranges).
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

    /// <summary>
    /// Every part of the folder that states a value of the shape (the graph's declared dimensions, a <c>config.json</c>,
    /// a <c>genai_config.json</c>, a preset the graph matched) must state the value in use. Run before anything is built
    /// from the config, so a mismatch is this one message rather than a tokenizer's or a cache's.
    /// </summary>
    /// <exception cref="OnnxGptException">Two parts disagree; the message quotes both, each in its own field names.</exception>
    public static void CheckShape(string modelPath, ModelDescription.Description description)
    {
        var config = description.Config;
        foreach (var part in description.Parts)
        {
            foreach (var (field, mine) in new (StatedShape.Field, int?)[]
            {
                (StatedShape.Field.Layers, config.Layers),
                (StatedShape.Field.KvHeads, config.KvHeads),
                (StatedShape.Field.HeadSize, config.HeadSize),
                (StatedShape.Field.VocabSize, config.VocabSize),
                (StatedShape.Field.ContextLength, config.ContextLength),
                (StatedShape.Field.Width, config.Width),
                (StatedShape.Field.Heads, config.Heads),
                (StatedShape.Field.BosTokenId, config.BosTokenId),
                (StatedShape.Field.EosTokenId, config.EosTokenId),
            })
            {
                // A value the config leaves unset (no begin or end id) is not contradicted by a part that sets one.
                if (part[field] is not { } theirs || mine is not { } value || theirs == value)
                {
                    continue;
                }

                // A list of end ids agrees with an end id it holds (Llama 3's config.json lists three, its GenAI config one).
                if (field == StatedShape.Field.EosTokenId && part.EndIds.Contains(value))
                {
                    continue;
                }

                string inUse = description.Chosen[field] is not null
                    ? description.Chosen.Statement(field)
                    : $"{description.Source} gives {field} {value.ToString(CultureInfo.InvariantCulture)}";
                throw new OnnxGptException(part.IsFile
                    ? $"{modelPath}: {part.Statement(field)} but {inUse}; the folder's files describe different models. " +
                      "Export the folder again, or remove the stale file."
                    : $"{modelPath}: {inUse}, but {part.Statement(field)}; the config does not belong to this model.");
            }
        }
    }
}

namespace OnnxGpt.Contracts;

/// <summary>Works out which tokenizer a checkpoint folder carries, so the export records it and copies its files.</summary>
public static class TokenizerDetection
{
    /// <summary>The file a training run writes beside its checkpoint to describe its tokenizer.</summary>
    public const string SpecFile = "tokenizer_spec.json";

    /// <summary>The size of GPT-2's vocabulary (50,000 merges, 256 bytes, end of text).</summary>
    public const int Gpt2VocabularySize = 50257;

    /// <summary>
    /// In order: <c>tokenizer_spec.json</c> (this project's own description), <c>tokenizer.json</c>,
    /// <c>vocab.json</c> + <c>merges.txt</c>, then GPT-2's built-in encoding when the vocabulary has its 50257 tokens.
    /// Null when nothing fits: the model then runs on token ids only.
    /// </summary>
    /// <param name="folder">The checkpoint or model folder to look in; null looks at the vocabulary size only.</param>
    /// <param name="vocabularySize">The model's vocabulary size, when known.</param>
    public static TokenizerSpec? Detect(string? folder, int? vocabularySize)
    {
        if (folder is not null)
        {
            string spec = Path.Combine(folder, SpecFile);
            if (InputFile.Exists(spec))
            {
                return TokenizerSpec.FromFile(spec);
            }

            // A Llama folder's tokenizer.json is SentencePiece-style (byte fallback, ▁ for spaces), which its
            // tokenizer.model describes exactly: that one is read.
            if (InputFile.Exists(Path.Combine(folder, "tokenizer.model")))
            {
                return new TokenizerSpec { Kind = TokenizerSpec.SentencePieceKind, Files = ["tokenizer.model"] };
            }

            if (InputFile.Exists(Path.Combine(folder, "tokenizer.json")))
            {
                return new TokenizerSpec { Kind = TokenizerSpec.TokenizerJsonKind, Files = ["tokenizer.json"] };
            }

            if (InputFile.Exists(Path.Combine(folder, "vocab.json")) && InputFile.Exists(Path.Combine(folder, "merges.txt")))
            {
                return new TokenizerSpec { Kind = TokenizerSpec.BpeKind, Files = ["vocab.json", "merges.txt"] };
            }
        }

        return vocabularySize == Gpt2VocabularySize ? TokenizerSpec.Gpt2 : null;
    }
}

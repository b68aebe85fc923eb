using OnnxGpt.Contracts;

namespace OnnxGpt.Training;

/// <summary>
/// A text file as token ids, split in order: the first part trains, the rest validates (tiny-shakespeare's
/// customary 90/10 split). Batches are windows at seeded random positions; evaluation uses fixed windows.
/// </summary>
public sealed class TextCorpus
{
    public TextCorpus(CharVocabulary vocabulary, int[] tokens, double trainFraction = 0.9)
    {
        ArgumentNullException.ThrowIfNull(vocabulary);
        ArgumentNullException.ThrowIfNull(tokens);
        if (trainFraction is <= 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(trainFraction), trainFraction, "the training share must lie in (0, 1].");
        }

        Vocabulary = vocabulary;
        int split = (int)(tokens.Length * trainFraction);
        Train = tokens[..split];
        Validation = tokens[split..];
    }

    /// <summary>Reads a UTF-8 text file and builds its vocabulary (or encodes it with <paramref name="vocabulary"/>).</summary>
    public static TextCorpus Load(string path, double trainFraction = 0.9, CharVocabulary? vocabulary = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new OnnxGptException($"{path}: the training text does not exist.");
        }

        var text = File.ReadAllText(path);
        if (text.Length == 0)
        {
            throw new OnnxGptException($"{path}: the training text is empty.");
        }

        vocabulary ??= CharVocabulary.FromText(text);
        int[] tokens;
        try
        {
            tokens = vocabulary.Encode(text);
        }
        catch (OnnxGptException e)
        {
            throw new OnnxGptException($"{path}: {e.Message} (the vocabulary comes from the checkpoint being resumed)", e);
        }

        return new TextCorpus(vocabulary, tokens, trainFraction);
    }

    public CharVocabulary Vocabulary { get; }

    public int[] Train { get; }

    public int[] Validation { get; }

    /// <summary>
    /// Fills (B, T) inputs and next-token targets from windows starting at uniform random positions of
    /// <paramref name="data"/>.
    /// </summary>
    public static void SampleBatch(int[] data, int batch, int seq, TrainingRandom random, Span<int> inputs, Span<int> targets)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(random);
        if (data.Length < seq + 1)
        {
            throw new OnnxGptException($"data: {data.Length} tokens are too few for windows of {seq} + 1.");
        }

        for (int b = 0; b < batch; b++)
        {
            int start = random.NextInt(data.Length - seq);
            data.AsSpan(start, seq).CopyTo(inputs.Slice(b * seq, seq));
            data.AsSpan(start + 1, seq).CopyTo(targets.Slice(b * seq, seq));
        }
    }

    /// <summary>
    /// Start positions of up to <paramref name="maxWindows"/> evaluation windows of <paramref name="seq"/> + 1 tokens:
    /// non-overlapping windows from the start, evenly thinned when there are more than asked for. Deterministic.
    /// </summary>
    public static int[] EvaluationWindows(int dataLength, int seq, int maxWindows)
    {
        int available = (dataLength - 1) / seq;
        if (available <= 0)
        {
            return [];
        }

        int count = Math.Min(available, Math.Max(1, maxWindows));
        return Enumerable.Range(0, count).Select(i => (int)((long)i * available / count) * seq).ToArray();
    }
}

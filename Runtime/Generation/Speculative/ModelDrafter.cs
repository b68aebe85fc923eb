using System.Diagnostics;
using System.Runtime.CompilerServices;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Model;

namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// A draft model proposing tokens one at a time over its own one-row cache (a <see cref="DecoderStep"/> of the draft's
/// layout and a <see cref="Sequence"/> that mirrors the target's tokens). Each proposal first brings its sequence to the
/// target's: it keeps the longest common prefix (its cache included) and feeds the rest, usually the one or two tokens
/// the last verification settled; then it decodes k tokens. Greedy, it proposes its argmax (after the same repetition
/// penalty); sampling, it draws from its own distribution under the same options and hands that distribution over for
/// the accept/reject step.
/// </summary>
internal sealed class ModelDrafter : IDisposable
{
    private readonly GptModel _model;
    private readonly Sequence _sequence;
    private readonly DecoderStep _step;
    private readonly Sampler _sampler;
    private readonly int[] _feed = new int[1];
    private readonly int _capacity;
    private readonly int _vocab;

    /// <param name="draft">The draft model (checked against the target with <see cref="CheckCompatible"/>).</param>
    /// <param name="options">The target's options: the draft samples (or not) the same way, with its own seed.</param>
    /// <param name="capacity">Tokens the draft's cache holds (the target's sequence can be no longer for it to draft).</param>
    public ModelDrafter(GptModel draft, GenerationOptions options, int capacity)
    {
        _model = draft;
        _vocab = draft.Config.VocabSize;
        _capacity = Math.Min(capacity, draft.Config.ContextLength);
        var draftOptions = options with
        {
            Seed = options.Seed is { } seed ? unchecked(seed + 0x9E3779B97F4A7C15UL) : null,
            StopStrings = [],
            StopTokenIds = [],
            Speculation = null,
            MaxNewTokens = int.MaxValue,
        };
        _sampler = new Sampler(draftOptions);
        _sequence = new Sequence(draftOptions, endOfSequence: -1, tokenizer: null);
        _sequence.Reserve(_capacity);
        _step = DecoderStep.Create(draft, [_sequence], _capacity, useCache: true);
    }

    /// <summary>
    /// Time the last <see cref="Propose"/> spent catching up on more than the two tokens a verification settles (the
    /// prompt, or a sequence rewound or appended to): a one-off, not what a draft token costs.
    /// </summary>
    public long CatchUpTicks { get; private set; }

    /// <summary>Tokens the draft can see: a longer sequence gets no proposal.</summary>
    public int Capacity => _capacity;

    /// <summary>
    /// Checks that <paramref name="draft"/> can draft for <paramref name="target"/>: the same vocabulary size, and the
    /// same tokenizer where both have one (the same ids for a probe text).
    /// </summary>
    /// <exception cref="OnnxGptException">They differ; the message names both models and what differs.</exception>
    public static void CheckCompatible(GptModel target, GptModel draft)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(draft);
        draft.ThrowIfDisposed();
        if (draft.Config.VocabSize != target.Config.VocabSize)
        {
            throw new OnnxGptException(
                $"{draft.ModelPath}: a draft model must share the model's tokenizer, but its vocabulary has {draft.Config.VocabSize} tokens " +
                $"and that of {target.ModelPath} has {target.Config.VocabSize}; export the draft from the same tokenizer.");
        }

        if (target.Tokenizer is { } a && draft.Tokenizer is { } b)
        {
            // Every token's bytes, one at a time: the same ids must stand for the same text.
            for (int id = 0; id < target.Config.VocabSize; id++)
            {
                if (!a.GetTokenBytes(id).SequenceEqual(b.GetTokenBytes(id)))
                {
                    throw new OnnxGptException(
                        $"{draft.ModelPath}: a draft model must share the model's tokenizer, but token {id} stands for \"{b.Decode([id])}\" there and for " +
                        $"\"{a.Decode([id])}\" in {target.ModelPath}; give a draft exported with the same tokenizer.");
                }
            }
        }
    }

    /// <summary>
    /// Proposes up to <paramref name="k"/> tokens to follow <paramref name="tokens"/>. Sampling, row i of
    /// <paramref name="probabilities"/> (k × V) receives the distribution token i was drawn from.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Propose(ReadOnlySpan<int> tokens, int k, Span<int> draft, Span<float> probabilities, bool sampling, Span<float> scratch)
    {
        k = Math.Min(k, _capacity - tokens.Length);
        if (k <= 0)
        {
            return 0;
        }

        int common = _sequence.Tokens.CommonPrefixLength(tokens);
        if (common < _sequence.Length)
        {
            _sequence.RewindTo(common);
        }

        _sequence.Append(tokens[common..]);
        _step.Rewind();   // at least the last token pending: its logits come from the next run
        CatchUpTicks = 0;
        if (_sequence.Pending > 2)
        {
            long started = Stopwatch.GetTimestamp();
            while (_sequence.Pending > 2)
            {
                _feed[0] = _sequence.Pending - 2;
                _step.Run(_feed, null);
            }

            CatchUpTicks = Stopwatch.GetTimestamp() - started;
        }

        for (int i = 0; i < k; i++)
        {
            while (_sequence.Pending > 0)
            {
                _feed[0] = _sequence.Pending;
                _step.Run(_feed, null);
            }

            var logits = _step.Logits(0);
            int token;
            if (sampling)
            {
                var row = probabilities.Slice(i * _vocab, _vocab);
                _sampler.Distribution(logits, _sequence.Tokens, _sequence.PromptLength, scratch, row);
                token = _sampler.Draw(row);
            }
            else
            {
                token = _sampler.Sample(logits, _sequence.Tokens, _sequence.PromptLength, scratch);
            }

            draft[i] = token;
            _sequence.Append(new ReadOnlySpan<int>(in token));
        }

        return k;
    }

    public void Dispose()
    {
        _step.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => $"draft {_model.ModelPath}";
}

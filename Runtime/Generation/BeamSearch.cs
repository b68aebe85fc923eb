namespace OnnxGpt.Runtime.Generation;

// Shapes: G prompts (groups), N beams per group (rows g·N .. g·N + N − 1 of the slot table), V vocabulary.

/// <summary>
/// Beam search over a <see cref="Generator"/>'s rows, with Hugging Face's semantics as ONNX Runtime's BeamSearch
/// operator and ONNX Runtime GenAI reproduce them (transformers' <c>BeamSearchScorer</c>/<c>BeamHypotheses</c>):
/// <list type="bullet">
/// <item>A prompt's search starts with one live beam of score 0 (Hugging Face's −1e9 for the others means the first
/// step draws only from beam 0). Each step, every live beam's next-token scores are its log-softmax, then the
/// processors (repetition penalty on the log-probabilities, OpenAI's penalties, logit bias, the no-repeat n-gram
/// ban), plus the beam's score.</item>
/// <item>Of the group's N·V candidates the best (1 + end tokens)·N (2·N with one end token) are taken in order of
/// score (ties: the lower beam, then the lower token id). A candidate that is an end token (the model's end of
/// sequence or a stop token) and ranks among the first N becomes a finished hypothesis, scored
/// <c>sum / length ^ length_penalty</c> with length the prompt plus the generated tokens before the end token (or,
/// with <see cref="BeamLength.Generated"/>, the generated tokens with the end token, as transformers now counts); the
/// others become the next beams until there are N.</item>
/// <item>Finished hypotheses are kept in a min-heap of N by score (the worst at its root). The group is done by
/// <see cref="BeamEarlyStopping"/>: Heuristic (Hugging Face's <c>False</c>): N finished and the worst of them
/// ≥ best candidate score / current length ^ length_penalty (current length = prompt + generated so far); Early
/// (<c>True</c>): N finished; Never (<c>"never"</c>): as Heuristic, but with a positive length penalty the best
/// candidate is judged at the longest length the search may reach. At the last step (max new tokens, or the context
/// full) every live beam of a group not done joins its hypotheses with its score and full length. With
/// <see cref="BeamLength.Generated"/> every one of these lengths leaves the prompt out, and the current length is
/// taken after this step's token.</item>
/// <item>With a constraint (<see cref="GenerationOptions.Constraint"/>) every beam has its own state (a beam copied
/// from another replays its tokens): its scores are masked after the processors, before the candidates are chosen,
/// and the token it takes advances it. When fewer continuations are allowed than there are beams, fewer beams go on.
/// A beam whose text is complete with nothing to follow can only take an end token (its hypothesis then competes as
/// any other); with no end token at all it becomes a finished hypothesis as it stands.</item>
/// <item>Lengths count each prompt's own tokens, so a batch of prompts of different lengths gives each what it gets
/// alone (Hugging Face and ONNX Runtime count the left padding of a padded batch too).</item>
/// </list>
/// The cache follows the beams without moving rows that stay: a new beam whose parent's row is not yet taken takes
/// that row (nothing copied, its token appended); a second child of the same parent goes to a row whose beam was
/// dropped, and only the positions after the two rows' common prefix are copied (<see cref="DecoderStep.CopyRow"/>):
/// per step, for each duplicated beam, layers × 2 × key/value heads × (positions since the rows diverged) × head size
/// values. Allocation per step: the finished hypotheses' token arrays only.
/// </summary>
internal sealed class BeamSearch
{
    private readonly Sequence?[] _rows;
    private readonly DecoderStep _step;
    private readonly GenerationOptions _options;
    private readonly int _groups;
    private readonly int _beams;
    private readonly int _vocab;
    private readonly int[] _endTokens;
    private readonly int _candidates;              // (1 + end tokens) · N, at most N · V
    private readonly double[] _score;              // per row: its beam's summed log-probability
    private readonly int[] _order;                 // per group: logical beam i → its row (the order of the last selection)
    private readonly int[] _live;                  // per group: live beams (1 before the first step)
    private readonly bool[] _done;
    private readonly Hypotheses[] _finished;
    private readonly int[] _maxLength;             // per group: prompt + max new tokens, within the context
    private readonly float[] _work;                // one row's processed log-probabilities
    private readonly int[] _marks;                 // scratch for OpenAI's penalties
    private readonly Candidate[] _heap;
    private readonly Candidate[] _next;            // the selected next beams of one group
    private readonly int[] _newRow;
    private readonly bool[] _claimed;
    private int _steps;

    public BeamSearch(Sequence?[] rows, DecoderStep step, GenerationOptions options, int groups, int vocab, int[] endTokens, int context)
    {
        _rows = rows;
        _step = step;
        _options = options;
        _groups = groups;
        _beams = options.NumBeams;
        _vocab = vocab;
        _endTokens = endTokens;
        _candidates = (int)Math.Min((long)Math.Max(2, 1 + endTokens.Length) * _beams, (long)_beams * vocab);
        _score = new double[rows.Length];
        _order = new int[rows.Length];
        _live = new int[groups];
        _done = new bool[groups];
        _finished = new Hypotheses[groups];
        _maxLength = new int[groups];
        for (int g = 0; g < groups; g++)
        {
            _live[g] = 1;
            _finished[g] = new Hypotheses(_beams);
            int prompt = rows[g * _beams]!.Length;
            _maxLength[g] = (int)Math.Min(context, (long)prompt + options.MaxNewTokens);
            for (int i = 0; i < _beams; i++)
            {
                _order[g * _beams + i] = g * _beams + i;
            }
        }

        _work = new float[vocab];
        _marks = new int[vocab];
        _heap = new Candidate[_candidates];
        _next = new Candidate[_beams];
        _newRow = new int[_beams];
        _claimed = new bool[_beams];
    }

    /// <summary>Every group is done (or finalized at the last step).</summary>
    public bool IsDone
    {
        get
        {
            foreach (bool d in _done)
            {
                if (!d)
                {
                    return false;
                }
            }

            return true;
        }
    }

    /// <summary>
    /// One step, after the generator fed every live beam's pending token: selects each group's next beams from the
    /// step's logits, moves the cache with them, appends their tokens; <paramref name="last"/>: this step reached the
    /// end (max new tokens or the context), so every group not done is finalized.
    /// </summary>
    public void Step(long now, bool last)
    {
        _steps++;
        for (int g = 0; g < _groups; g++)
        {
            if (!_done[g])
            {
                StepGroup(g, now);
            }

            if (!_done[g] && (last || _steps >= _options.MaxNewTokens || Lead(g).Length >= _maxLength[g]))
            {
                Finalize(g);
            }
        }
    }

    /// <summary>Ends every group now (the context is full before a step could run).</summary>
    public void FinalizeAll()
    {
        for (int g = 0; g < _groups; g++)
        {
            if (!_done[g])
            {
                Finalize(g);
            }
        }
    }

    /// <summary>The best <see cref="GenerationOptions.NumReturnSequences"/> hypotheses of each group, best first.</summary>
    public IEnumerable<(int Group, int Rank, int[] Generated, bool Ended, double Score)> Results()
    {
        for (int g = 0; g < _groups; g++)
        {
            var sorted = _finished[g].Sorted();
            for (int j = 0; j < Math.Min(_options.NumReturnSequences, sorted.Count); j++)
            {
                yield return (g, j, sorted[j].Tokens, sorted[j].Ended, sorted[j].Score);
            }
        }
    }

    private Sequence Lead(int g) => _rows[_order[g * _beams]]!;

    /// <summary>The length a live beam of <paramref name="length"/> tokens is scored with (see <see cref="BeamLength"/>).</summary>
    private int Length(int length, int promptLength) => _options.BeamLength == BeamLength.Generated ? length - promptLength : length;

    /// <summary>
    /// The length a hypothesis ending after a beam of <paramref name="length"/> tokens is scored with: without its end
    /// token, prompt included; or its generated tokens with the end token (and the stopping rules' length after this step).
    /// </summary>
    private int EndedLength(int length, int promptLength) => _options.BeamLength == BeamLength.Generated ? length + 1 - promptLength : length;

    private void StepGroup(int g, long now)
    {
        int n = _beams, size = 0;
        int promptLength = _rows[g * n]!.PromptLength;
        int curLength = 0;
        for (int i = 0; i < _live[g]; i++)
        {
            int row = _order[g * n + i];
            var sequence = _rows[row]!;
            curLength = sequence.Length;
            if (sequence.Constraint is { IsComplete: true, CanContinue: false } && _endTokens.Length == 0)
            {
                // Its text completes the constraint, nothing may follow and there is no end token to stop with: the
                // beam is a finished hypothesis as it stands (as a sampled row stops with ConstraintComplete).
                _finished[g].Add(_score[row] / Math.Pow(Length(sequence.Length, promptLength), _options.LengthPenalty), sequence.Tokens[promptLength..].ToArray(), ended: false);
                continue;
            }

            ProcessedLogProbs(row, sequence);
            double beamScore = _score[row];
            for (int v = 0; v < _vocab; v++)
            {
                float lp = _work[v];
                if (float.IsNegativeInfinity(lp))
                {
                    continue;
                }

                var c = new Candidate(beamScore + lp, i, v, lp);
                if (size < _candidates)
                {
                    SiftUp(c, size++);
                }
                else if (Better(c, _heap[0]))
                {
                    SiftDown(c, size);
                }
            }
        }

        // Best first.
        var ranked = _heap.AsSpan(0, size);
        ranked.Sort(static (a, b) => Better(a, b) ? -1 : Better(b, a) ? 1 : 0);
        int chosen = 0;
        for (int rank = 0; rank < ranked.Length && chosen < n; rank++)
        {
            var c = ranked[rank];
            if (Array.IndexOf(_endTokens, c.Token) >= 0)
            {
                if (rank >= n)
                {
                    continue;   // an end token outside the best N does not finish a hypothesis
                }

                var parent = _rows[_order[g * n + c.Beam]]!;
                var generated = parent.Tokens[promptLength..].ToArray();
                _finished[g].Add(c.Score / Math.Pow(EndedLength(parent.Length, promptLength), _options.LengthPenalty), [.. generated, c.Token], ended: true);
            }
            else
            {
                _next[chosen++] = c;
            }
        }

        // Fewer continuations than beams (a constraint or a logit bias of -inf leaves few tokens): fewer beams go on.
        int longest = _options.BeamLength == BeamLength.Generated ? _maxLength[g] - promptLength : _maxLength[g];
        if (chosen == 0 || _finished[g].IsDone(ranked[0].Score, EndedLength(curLength, promptLength), longest, _options))
        {
            _done[g] = true;
            return;
        }

        MoveBeams(g, chosen, now);
    }

    /// <summary>
    /// The next beams take rows: the first child of a parent keeps the parent's row; the others go to rows no parent
    /// kept, as copies of their parent (made before any row appends its token). Then every new beam appends its token.
    /// </summary>
    private void MoveBeams(int g, int count, long now)
    {
        int first = g * _beams;
        Array.Clear(_claimed);
        for (int i = 0; i < count; i++)
        {
            int parentRow = _order[first + _next[i].Beam];
            _newRow[i] = -1;
            if (!_claimed[parentRow - first])
            {
                _claimed[parentRow - first] = true;
                _newRow[i] = parentRow;
            }
        }

        int free = 0;
        for (int i = 0; i < count; i++)
        {
            if (_newRow[i] >= 0)
            {
                continue;
            }

            while (_claimed[free])
            {
                free++;
            }

            _claimed[free] = true;
            int destination = first + free, source = _order[first + _next[i].Beam];
            var from = _rows[source]!;
            var to = _rows[destination]!;
            int keep = Math.Min(to.Cached, from.Cached);
            keep = to.Tokens[..keep].CommonPrefixLength(from.Tokens[..keep]);
            to.CopyFrom(from, keep);
            _step.CopyRow(source, destination);
            _newRow[i] = destination;
        }

        for (int i = 0; i < count; i++)
        {
            int row = _newRow[i];
            _rows[row]!.Accept(_next[i].Token, now);
            _score[row] = _next[i].Score;
            _order[first + i] = row;
        }

        _live[g] = count;
    }

    /// <summary>Every live beam joins the group's hypotheses with its score and its whole length; the group is done.</summary>
    private void Finalize(int g)
    {
        int n = _beams;
        int promptLength = _rows[g * n]!.PromptLength;
        for (int i = 0; i < _live[g]; i++)
        {
            var sequence = _rows[_order[g * n + i]]!;
            _finished[g].Add(_score[_order[g * n + i]] / Math.Pow(Length(sequence.Length, promptLength), _options.LengthPenalty),
                sequence.Tokens[promptLength..].ToArray(), ended: false);
        }

        _done[g] = true;
    }

    /// <summary>The row's next-token log-softmax, then the processors, into <see cref="_work"/>.</summary>
    private void ProcessedLogProbs(int row, Sequence sequence)
    {
        var logits = _step.Logits(row);
        double lse = LogSoftmax.LogSumExp(logits);
        for (int v = 0; v < _vocab; v++)
        {
            _work[v] = (float)(logits[v] - lse);
        }

        if (_options.RepetitionPenalty != 1)
        {
            // Hugging Face's penalty on the log-probabilities (all negative: multiplied), from the unpenalised values,
            // so a token seen twice is penalised once.
            double penalty = _options.RepetitionPenalty;
            foreach (int token in sequence.Tokens)
            {
                double x = logits[token] - lse;
                _work[token] = (float)Math.Clamp(x < 0 ? x * penalty : x / penalty, -float.MaxValue, float.MaxValue);
            }
        }

        if (_options.PresencePenalty != 0 || _options.FrequencyPenalty != 0)
        {
            Sampler.ApplyOpenAiPenalties(_work, sequence.Tokens[sequence.PromptLength..], _marks, (float)_options.PresencePenalty, (float)_options.FrequencyPenalty);
        }

        foreach (var (token, bias) in _options.LogitBias)
        {
            _work[token] += (float)bias;
        }

        if (_options.NoRepeatNgramSize > 0)
        {
            Sampler.BanRepeatedNgrams(_work, sequence.Tokens, _options.NoRepeatNgramSize);
        }

        sequence.LogitsProcessor?.Invoke(sequence.Tokens, _work);
        sequence.Constraint?.Apply(_work);   // a constrained beam continues only with tokens the constraint allows
    }

    /// <summary>a ranks before b: a higher score, or the same score and a lower (beam, token).</summary>
    private static bool Better(in Candidate a, in Candidate b) =>
        a.Score > b.Score || (a.Score == b.Score && (a.Beam < b.Beam || (a.Beam == b.Beam && a.Token < b.Token)));

    // A min-heap by rank (the worst candidate kept at the root).
    private void SiftUp(Candidate c, int at)
    {
        while (at > 0)
        {
            int parent = (at - 1) / 2;
            if (!Better(_heap[parent], c))
            {
                break;
            }

            _heap[at] = _heap[parent];
            at = parent;
        }

        _heap[at] = c;
    }

    private void SiftDown(Candidate c, int size)
    {
        int at = 0;
        while (true)
        {
            int child = 2 * at + 1;
            if (child >= size)
            {
                break;
            }

            if (child + 1 < size && Better(_heap[child], _heap[child + 1]))
            {
                child++;
            }

            if (!Better(c, _heap[child]))
            {
                break;
            }

            _heap[at] = _heap[child];
            at = child;
        }

        _heap[at] = c;
    }

    /// <summary>One continuation: the beam's new score, its logical beam, the token and the token's processed log-probability.</summary>
    private readonly record struct Candidate(double Score, int Beam, int Token, float LogProb);

    /// <summary>A group's finished hypotheses: the best N by score in a min-heap (Hugging Face's BeamHypotheses).</summary>
    private sealed class Hypotheses(int capacity)
    {
        private readonly List<(double Score, int[] Tokens, bool Ended, long Order)> _heap = new(capacity + 1);
        private long _added;

        public int Count => _heap.Count;

        /// <summary>The worst kept score (Hugging Face's <c>worst_score</c>, which is the heap's root once any is kept).</summary>
        public double Worst => _heap.Count == 0 ? 1e9 : _heap[0].Score;

        public void Add(double score, int[] tokens, bool ended)
        {
            if (_heap.Count >= capacity && !(score > Worst))
            {
                return;
            }

            _heap.Add((score, tokens, ended, _added++));
            int at = _heap.Count - 1;
            while (at > 0 && _heap[(at - 1) / 2].Score > _heap[at].Score)
            {
                (_heap[at], _heap[(at - 1) / 2]) = (_heap[(at - 1) / 2], _heap[at]);
                at = (at - 1) / 2;
            }

            if (_heap.Count > capacity)
            {
                _heap[0] = _heap[^1];
                _heap.RemoveAt(_heap.Count - 1);
                for (int i = 0; ;)
                {
                    int child = 2 * i + 1;
                    if (child >= _heap.Count)
                    {
                        break;
                    }

                    if (child + 1 < _heap.Count && _heap[child + 1].Score < _heap[child].Score)
                    {
                        child++;
                    }

                    if (_heap[i].Score <= _heap[child].Score)
                    {
                        break;
                    }

                    (_heap[i], _heap[child]) = (_heap[child], _heap[i]);
                    i = child;
                }
            }
        }

        /// <summary>Hugging Face's <c>is_done</c> with the group's best candidate score, the current length and the longest length the search may reach, each as <see cref="BeamLength"/> counts them.</summary>
        public bool IsDone(double bestSum, int currentLength, int maxLength, GenerationOptions options)
        {
            if (_heap.Count < capacity)
            {
                return false;
            }

            double penalty = options.LengthPenalty;
            return options.EarlyStopping switch
            {
                BeamEarlyStopping.Early => true,
                BeamEarlyStopping.Never when penalty > 0 => Worst >= bestSum / Math.Pow(maxLength, penalty),
                _ => Worst >= bestSum / Math.Pow(currentLength, penalty),
            };
        }

        /// <summary>Best first (equal scores: the one added later first, as Hugging Face's stable sort and pop give).</summary>
        public List<(double Score, int[] Tokens, bool Ended)> Sorted() =>
            [.. _heap.OrderByDescending(h => h.Score).ThenByDescending(h => h.Order).Select(h => (h.Score, h.Tokens, h.Ended))];
    }
}

using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using OnnxGpt.Runtime.Diagnostics;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Runtime.Batching;

/// <summary>
/// Continuous batching over one <see cref="GptModel"/>: a long-lived engine that decodes many requests together, one
/// run of the session per step for every sequence that decodes, so the weights are read once per step for all of
/// them instead of once per request. It holds one in-place KV cache of <see cref="BatchEngineOptions.Slots"/> rows
/// and schedules, on a thread of its own:
/// <list type="bullet">
/// <item><b>Joining and leaving between steps.</b> A request takes a free slot (or waits in a bounded queue; beyond
/// it, <see cref="Submit"/> throws <see cref="BatchEngineBusyException"/>). Its prompt is fed in chunks of
/// <see cref="BatchEngineOptions.PrefillChunkTokens"/>, one chunk per step beside the decoding rows, so the others
/// are held up by one chunk, not by a whole prompt; one that arrives during a decoding step with a slot free stops that
/// step at its next operator, so its first chunk runs at once (<see cref="BatchEngineOptions.InterruptDecodingForNewRequests"/>).
/// It leaves when it finishes (max tokens, stop token or string, end of text, full slot) or is cancelled, and its
/// slot is free at the next step.</item>
/// <item><b>Everything per sequence.</b> Sampling options, seed, stop strings, a logits processor, streaming and the
/// finish reason belong to the request; a seeded request picks the same tokens whatever else is in the batch, a
/// greedy one exactly the tokens it picks alone.</item>
/// <item><b>Conversation reuse.</b> A finished conversation keeps its slot until another request needs it; a request
/// whose prompt starts with most of such a sequence continues from its cache.</item>
/// </list>
/// It needs the fused graph (<c>--graph fused</c>), whose cache is written in place with each row at its own length;
/// the portable graph's concatenating cache gives every row the same length, so rows joining and leaving at any time
/// would pad each other without bound: <see cref="Start"/> refuses it (see <see cref="Supports"/>), and callers run
/// such a model with one <see cref="Generator"/> per request. Thread-safe.
/// </summary>
public sealed class BatchEngine : IDisposable
{
    private readonly GptModel _model;
    private readonly ILogger _logger;
    private readonly ITextTokenizer? _tokenizer;
    private readonly int _eos;
    private readonly int[] _moreEnds;
    private readonly DecoderStep _step;
    private readonly Sequence?[] _rows;          // the slot table: a sequence (active or idle) or nothing
    private readonly BatchRequest?[] _owners;    // the request decoding in each slot, or null (idle or free)
    private readonly BatchRequest?[] _lastOwners;   // the request that last ran in each slot (whose conversation an idle slot holds)
    private readonly System.Collections.Concurrent.ConcurrentQueue<BatchRequest> _releases = new();
    private readonly long[] _idleSince;
    private readonly int[] _feed;
    private readonly float[] _scratch;
    private readonly Speculator?[] _speculators;   // per slot: speculative decoding of its request, once it decodes alone
    private readonly Queue<BatchRequest> _queue = new();
    private readonly Lock _lock = new();
    private readonly AutoResetEvent _wake = new(false);
    private readonly Thread _thread;
    private volatile bool _stopping;
    private bool _disposed;
    private int _admitted;   // requests queued or holding a slot
    private long _runningSince;   // when the run going on now began (0 between runs), for a submitted request's timeline
    private bool _interruptible;  // (under _lock) the run going on now is a decoding one a joining request may interrupt
    private bool _interrupting;   // (under _lock) a joining request has interrupted it
    private bool _interruptedLast; // the last decoding run was interrupted: the next one is not, so the decoding rows go on

    // Statistics, written by the engine's thread.
    private int _active;
    private int _idle;
    private long _steps;
    private long _generated;
    private long _fedTokens;
    private long _steadyBytes;
    private long _steadyTokens;
    private long _interruptions;

    private BatchEngine(GptModel model, BatchEngineOptions options, ILogger logger)
    {
        _model = model;
        _logger = logger;
        Options = options;
        SlotTokens = options.SlotTokens == 0 ? model.Config.ContextLength : Math.Min(options.SlotTokens, model.Config.ContextLength);
        _tokenizer = options.DecodeText ? model.Tokenizer : null;
        _eos = options.StopAtEndOfSequence && model.Config.EosTokenId is { } eos ? eos : -1;
        _moreEnds = options.StopAtEndOfSequence ? [.. model.EndTokenIds.Where(t => t != _eos)] : [];
        _rows = new Sequence?[options.Slots];
        _owners = new BatchRequest?[options.Slots];
        _lastOwners = new BatchRequest?[options.Slots];
        _idleSince = new long[options.Slots];
        _feed = new int[options.Slots];
        _scratch = new float[Sampler.ScratchLength(model.Config.VocabSize)];
        _speculators = new Speculator?[options.Slots];
        _step = DecoderStep.Create(model, _rows, SlotTokens, useCache: true);
        _thread = new Thread(Loop) { IsBackground = true, Name = "OnnxGpt batch engine" };
    }

    /// <summary>The model the engine runs.</summary>
    public GptModel Model => _model;

    /// <summary>How it was set up.</summary>
    public BatchEngineOptions Options { get; }

    /// <summary>Sequence slots.</summary>
    public int Slots => _rows.Length;

    /// <summary>Tokens one slot holds (prompt and reply).</summary>
    public int SlotTokens { get; }

    /// <summary>Bytes of the KV cache, allocated at start for every slot (in <see cref="GptModel.CacheDevice"/> memory).</summary>
    public long CacheBytes => _step.Cache!.AllocatedBytes;

    /// <summary>Whether the engine can run <paramref name="model"/>: its graph writes its cache in place (the fused graph).</summary>
    public static bool Supports(GptModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return DecoderStep.SupportsInPlace(model.Signature);
    }

    /// <summary>Allocates the cache for every slot and starts the engine's thread.</summary>
    /// <param name="model">The model (not owned: dispose the engine first).</param>
    /// <param name="options">Slots, queue, chunking and reuse; null: the defaults.</param>
    /// <param name="logger">Where the start (slots and cache memory) and failures are logged; null: nowhere.</param>
    /// <exception cref="OnnxGptException">The model's graph has no in-place cache (the portable graph); the message says what to do.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public static BatchEngine Start(GptModel model, BatchEngineOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        model.ThrowIfDisposed();
        options ??= new BatchEngineOptions();
        options.Validate();
        if (!Supports(model))
        {
            throw new OnnxGptException(
                $"{model.ModelPath}: the batch engine needs a graph that writes its KV cache in place (an export with --graph fused); " +
                $"this graph ({model.Signature.Convention} I/O, {(model.Signature.IsFused ? "fused" : "portable")}) concatenates its cache, " +
                "which gives every row the same length. Export it with --graph fused, or run it with one Generator per request.");
        }

        var engine = new BatchEngine(model, options, logger ?? NullLogger.Instance);
        engine._thread.Start();
        engine._logger.LogInformation("OnnxGpt batch engine: {Slots} slots of {Tokens} tokens, KV cache {Megabytes:F1} MB in {Device} memory.",
            engine.Slots, engine.SlotTokens, engine.CacheBytes / 1e6, model.CacheDevice);
        return engine;
    }

    /// <summary>The engine's load now (see <see cref="BatchEngineStatistics"/>).</summary>
    public BatchEngineStatistics GetStatistics()
    {
        int queued;
        lock (_lock)
        {
            queued = _queue.Count;
        }

        long tokens = Interlocked.Read(ref _steadyTokens);
        return new BatchEngineStatistics(Slots, Volatile.Read(ref _active), Volatile.Read(ref _idle), queued, Interlocked.Read(ref _steps),
            Interlocked.Read(ref _generated), Interlocked.Read(ref _fedTokens), tokens == 0 ? double.NaN : (double)Interlocked.Read(ref _steadyBytes) / tokens,
            Interlocked.Read(ref _interruptions));
    }

    /// <summary>
    /// Queues a request: <paramref name="prompt"/> continued under <paramref name="options"/>. Read its tokens with
    /// <see cref="BatchRequest.ReadTokensAsync"/>.
    /// </summary>
    /// <param name="prompt">Token ids (at least one, fewer than <see cref="SlotTokens"/>).</param>
    /// <param name="options">How its tokens are picked, its seed and its stops.</param>
    /// <param name="logitsProcessor">Changes its logits before each sample (constrained decoding); null: none.</param>
    /// <param name="cancellationToken">Cancels the request (its slot is free at the next step).</param>
    /// <param name="randomState">
    /// Where its sampler's random stream starts instead of at <see cref="GenerationOptions.Seed"/>: a finished
    /// request's <see cref="BatchRequest.RandomState"/>, so a conversation's sampling goes on from where its last reply
    /// stopped (after a restart or on another machine as well); null: from the seed.
    /// </param>
    /// <exception cref="OnnxGptException">A token id is outside the vocabulary, the prompt is empty or leaves no room
    /// for a reply in a slot, or stop strings are given without a tokenizer.</exception>
    /// <exception cref="ArgumentException"><paramref name="randomState"/> is not four words, or all zero.</exception>
    /// <exception cref="BatchEngineBusyException">Every slot is busy and the queue is full.</exception>
    public BatchRequest Submit(IReadOnlyList<int> prompt, GenerationOptions options, LogitsProcessor? logitsProcessor = null, CancellationToken cancellationToken = default,
        IReadOnlyList<ulong>? randomState = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(options);
        ObjectDisposedException.ThrowIf(_disposed, this);
        options.Validate();
        if (options.IsBeamSearch || options.NumReturnSequences > 1)
        {
            throw new ArgumentException(
                $"the batch engine decodes one sequence per request; beam search ({options.NumBeams} beams) and several sequences per prompt " +
                $"({options.NumReturnSequences}) run on a Generator (GptModel.CreateGenerator).", nameof(options));
        }

        ulong[]? resume = randomState is null ? null : DeterministicRandomState(randomState);
        int vocab = _model.Config.VocabSize;
        foreach (int biased in options.LogitBias.Keys)
        {
            if (biased >= vocab)
            {
                throw new OnnxGptException($"LogitBias names token {biased}, outside the model's vocabulary of {vocab} tokens (valid ids are 0 to {vocab - 1}).");
            }
        }

        var tokens = prompt.ToArray();
        if (tokens.Length == 0)
        {
            tokens = _model.Config.BosTokenId is { } bos ? [bos]
                : throw new OnnxGptException("the prompt is empty and the model has no bos_token_id to start from; give at least one token.");
        }

        for (int i = 0; i < tokens.Length; i++)
        {
            if ((uint)tokens[i] >= (uint)vocab)
            {
                throw new OnnxGptException($"token id {tokens[i]} at position {i} is outside the vocabulary of {vocab} tokens (valid ids are 0 to {vocab - 1}).");
            }
        }

        if (tokens.Length >= SlotTokens)
        {
            throw new OnnxGptException(
                $"the prompt has {tokens.Length} tokens, but a slot of the batch engine holds {SlotTokens} tokens, which leaves no room for a reply; shorten the prompt.");
        }

        if (_tokenizer is null && options.StopStrings.Count > 0)
        {
            throw new OnnxGptException($"{_model.ModelPath}: stop strings need text, but the engine decodes none (no tokenizer, or DecodeText off).");
        }

        Generator.CheckConstraint(_model, options);   // compiled for the vocabulary here, not on the decoding thread

        var request = new BatchRequest(tokens, options, logitsProcessor, () => _wake.Set(), resume);
        lock (_lock)
        {
            if (_admitted >= Slots + Options.MaxQueuedRequests)
            {
                throw new BatchEngineBusyException(
                    $"the batch engine is busy: {Slots} slots are generating and {Options.MaxQueuedRequests} requests waiting; try again later.");
            }

            _admitted++;
            request.MarkRunInFlight(Volatile.Read(ref _runningSince));
            _queue.Enqueue(request);
            OnnxGptTelemetry.QueueLength.Add(1);
            if (_interruptible && !_interrupting && _admitted <= Slots)
            {
                // A slot is free for it: stop the decoding run in flight, so its prompt runs now instead of after it.
                _interrupting = true;
                _step.Interrupt();
            }
        }

        if (cancellationToken.CanBeCanceled)
        {
            var registration = cancellationToken.Register(static r => ((BatchRequest)r!).Cancel(), request);
            request.Completion.ContinueWith(static (_, r) => ((CancellationTokenRegistration)r!).Dispose(), registration, TaskScheduler.Default);
        }

        _wake.Set();
        return request;
    }

    /// <summary>
    /// Frees the slot in which <paramref name="finished"/> left its conversation for reuse, at the next step, if the
    /// conversation is still there (no later request took the slot over): for a caller that knows the conversation will
    /// not come back (a conversation that moves away or expires), so the slot goes to a new conversation at once
    /// instead of waiting to be evicted as the least recently used. A request still running is left alone.
    /// </summary>
    public void ReleaseConversation(BatchRequest finished)
    {
        ArgumentNullException.ThrowIfNull(finished);
        if (_disposed || finished.LastSlot < 0)
        {
            return;
        }

        _releases.Enqueue(finished);
        _wake.Set();
    }

    /// <summary>Stops the engine's thread, cancels every request still queued or running and frees the cache.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _stopping = true;
        _wake.Set();
        _thread.Join();
        var stopped = new ObjectDisposedException(nameof(BatchEngine), "the batch engine was disposed.");
        lock (_lock)
        {
            while (_queue.TryDequeue(out var request))
            {
                OnnxGptTelemetry.QueueLength.Add(-1);
                request.Fail(stopped);
            }
        }

        foreach (var owner in _owners)
        {
            owner?.Fail(stopped);
        }

        foreach (var speculator in _speculators)
        {
            speculator?.Dispose();
        }

        _step.Dispose();
        _wake.Dispose();
    }

    private void Loop()
    {
        while (!_stopping)
        {
            try
            {
                if (!Step())
                {
                    _wake.WaitOne();
                }
            }
            catch (Exception e)
            {
                // A failed run leaves the fed rows' caches unknown: fail every request in a slot and start them afresh.
                _logger.LogError(e, "OnnxGpt batch engine: a step failed; failing the {Count} requests in slots.", _active);
                for (int b = 0; b < Slots; b++)
                {
                    if (_owners[b] is { } owner)
                    {
                        Leave(b, keep: false);
                        owner.Fail(e);
                    }

                    _rows[b] = null;
                }

                UpdateCounts();
            }
        }
    }

    /// <summary>One step: admit, cancel, feed, sample. False when there is nothing to do.</summary>
    private bool Step()
    {
        long bytesBefore = GC.GetAllocatedBytesForCurrentThread();
        bool changed = ApplyReleases();
        changed |= Admit();
        for (int b = 0; b < Slots; b++)
        {
            if (_owners[b] is { CancelRequested: true } owner)
            {
                Leave(b, keep: true);
                owner.Fail(new OperationCanceledException("the request was cancelled."));
                changed = true;
            }
        }

        // First the prompts: the oldest gets a chunk while others decode (every prompt one when none does), so a
        // joining request holds the decoding ones up by one chunk at a time, and its first token goes out at once.
        bool decoding = false;
        int prefill = -1;
        for (int b = 0; b < Slots; b++)
        {
            if (_owners[b] is not { } owner)
            {
                continue;
            }

            int pending = _rows[b]!.Pending;
            decoding |= pending == 1;
            if (pending > 1 && (prefill < 0 || owner.SubmittedAt < _owners[prefill]!.SubmittedAt))
            {
                prefill = b;
            }
        }

        int sampled = 0;
        bool ran = false;
        if (prefill >= 0)
        {
            for (int b = 0; b < Slots; b++)
            {
                _feed[b] = _owners[b] is not null && _rows[b]!.Pending > 1 && (!decoding || b == prefill)
                    ? Math.Min(_rows[b]!.Pending, Options.PrefillChunkTokens) : 0;
            }

            sampled += RunAndSample(ref changed, interruptible: false);
            ran = true;
        }

        // Then every row that decodes (a prompt that just finished included) gets its one token, all in one run; a
        // request that asked for speculative decoding and is the only one in a slot runs a verifying step instead.
        bool any = false;
        int decoders = 0, alone = -1, busy = 0;
        for (int b = 0; b < Slots; b++)
        {
            _feed[b] = _owners[b] is not null && _rows[b]!.Pending == 1 ? 1 : 0;
            any |= _feed[b] > 0;
            decoders += _feed[b];
            busy += _owners[b] is not null ? 1 : 0;
            alone = _feed[b] > 0 ? b : alone;
        }

        if (decoders == 1 && busy == 1 && !ran && _owners[alone]!.Options.Speculates && Speculate(alone, ref changed, ref sampled))
        {
            any = false;
            ran = true;
        }

        if (any)
        {
            long plainStarted = decoders == 1 && _speculators[alone] is not null ? Stopwatch.GetTimestamp() : 0;
            long interruptions = _interruptions;
            sampled += RunAndSample(ref changed, interruptible: Options.InterruptDecodingForNewRequests && !_interruptedLast);
            _interruptedLast = _interruptions != interruptions;
            if (plainStarted != 0)
            {
                _speculators[alone]?.ObservePlainStep(Stopwatch.GetTimestamp() - plainStarted);
            }

            ran = true;
        }

        Interlocked.Add(ref _generated, sampled);
        if (!changed && sampled > 0)
        {
            Interlocked.Add(ref _steadyBytes, GC.GetAllocatedBytesForCurrentThread() - bytesBefore);
            Interlocked.Add(ref _steadyTokens, sampled);
        }

        UpdateCounts();
        return ran || changed;
    }

    /// <summary>
    /// Runs the step on <see cref="_feed"/>, then samples the next token of every fed row whose tokens are all fed,
    /// streams it, and lets a finished request leave. Returns how many tokens it sampled. An
    /// <paramref name="interruptible"/> run (rows decoding, no prompt) stops when a request that can take a slot
    /// arrives meanwhile: it then samples nothing, and its rows are fed again after the newcomer's prompt.
    /// </summary>
    private int RunAndSample(ref bool changed, bool interruptible)
    {
        long started = Stopwatch.GetTimestamp();
        for (int b = 0; b < Slots; b++)
        {
            if (_feed[b] > 0 && _owners[b]!.GeneratedTokens == 0)
            {
                _owners[b]!.MarkPromptRun(started);
            }
        }

        Volatile.Write(ref _runningSince, started);
        bool interrupted = false;
        if (interruptible)
        {
            lock (_lock)
            {
                _interruptible = true;
            }
        }

        try
        {
            _step.Run(_feed, null);
        }
        catch (StepInterruptedException)
        {
            interrupted = true;
        }
        finally
        {
            Volatile.Write(ref _runningSince, 0);
            if (interruptible)
            {
                lock (_lock)
                {
                    _interruptible = false;
                    if (_interrupting)
                    {
                        _interrupting = false;
                        _step.Resume();   // whether the run stopped or finished first
                    }
                }
            }
        }

        if (interrupted)
        {
            Interlocked.Increment(ref _interruptions);
            changed = true;
            return 0;
        }

        int rows = 0;
        foreach (int f in _feed)
        {
            rows += f > 0 ? 1 : 0;
        }

        OnnxGptTelemetry.BatchSize.Record(rows);
        Interlocked.Increment(ref _steps);
        long now = Stopwatch.GetTimestamp();
        int sampled = 0;
        for (int b = 0; b < Slots; b++)
        {
            if (_feed[b] == 0)
            {
                continue;
            }

            var sequence = _rows[b]!;
            var owner = _owners[b]!;
            owner.AddFed(_feed[b]);
            Interlocked.Add(ref _fedTokens, _feed[b]);
            if (sequence.Pending > 0)
            {
                continue;   // more of its prompt to come
            }

            if (owner.GeneratedTokens == 0)
            {
                owner.MarkPromptFed(now);
            }

            int token = sequence.Next(_step.Logits(b), _scratch, now);
            sampled++;
            Publish(b, sequence, owner, token);
            if (sequence.FinishReason != FinishReason.None)
            {
                Leave(b, keep: true);
                owner.Finish(Generator.Result(b, sequence), sequence.RandomState);
                changed = true;
            }
        }

        return sampled;
    }

    /// <summary>Stops the sequence in slot <paramref name="b"/> if it filled its slot, and streams its newest token to its request.</summary>
    private void Publish(int b, Sequence sequence, BatchRequest owner, int token)
    {
        if (sequence.Length >= SlotTokens)
        {
            sequence.Stop(FinishReason.ContextFull);
        }

        owner.Publish(new GeneratedToken(b, token, sequence.Text?.Piece ?? string.Empty, sequence.FinishReason, sequence.LastLogProbs));
    }

    /// <summary>
    /// A verifying step for the request in slot <paramref name="b"/>, the only one in the engine: its speculator
    /// drafts, the step scores the draft over that row alone, and every token picked is accepted, streamed and checked
    /// against the stop rules in turn. False when nothing was drafted (a plain step follows).
    /// </summary>
    private bool Speculate(int b, ref bool changed, ref int sampled)
    {
        var sequence = _rows[b]!;
        var owner = _owners[b]!;
        var speculator = _speculators[b] ??= new Speculator(_model, sequence.Options, SlotTokens);
        Volatile.Write(ref _runningSince, Stopwatch.GetTimestamp());   // a request arriving now waits for this round (not interruptible)
        int picked;
        try
        {
            picked = speculator.Round(_step, _feed, b, sequence, _scratch);
        }
        finally
        {
            Volatile.Write(ref _runningSince, 0);
        }

        if (picked == 0)
        {
            return false;
        }

        OnnxGptTelemetry.BatchSize.Record(1);
        Interlocked.Increment(ref _steps);
        owner.AddFed(speculator.Fed);
        Interlocked.Add(ref _fedTokens, speculator.Fed);
        long now = Stopwatch.GetTimestamp();
        foreach (int token in speculator.Picked)
        {
            sequence.Accept(token, now);
            sampled++;
            Publish(b, sequence, owner, token);
            if (sequence.FinishReason != FinishReason.None)
            {
                break;
            }
        }

        _step.Rewind();   // keeps the cache of every accepted token
        if (sequence.FinishReason != FinishReason.None)
        {
            Leave(b, keep: true);
            owner.Finish(Generator.Result(b, sequence), sequence.RandomState);
            changed = true;
        }

        return true;
    }

    /// <summary>Empties the slots whose idle conversations <see cref="ReleaseConversation"/> was asked to free. True when any was.</summary>
    private bool ApplyReleases()
    {
        bool changed = false;
        while (_releases.TryDequeue(out var released))
        {
            int b = released.LastSlot;
            if (_owners[b] is null && ReferenceEquals(_lastOwners[b], released) && _rows[b] is not null)
            {
                _rows[b] = null;
                _lastOwners[b] = null;
                changed = true;
            }
        }

        if (changed)
        {
            UpdateCounts();
        }

        return changed;
    }

    /// <summary>Moves queued requests into slots while one can be had. True when any joined or left.</summary>
    private bool Admit()
    {
        bool changed = false;
        lock (_lock)
        {
            // Requests cancelled while they wait leave the queue wherever they are in it.
            bool anyCancelled = false;
            foreach (var r in _queue)
            {
                anyCancelled |= r.CancelRequested;
            }

            if (anyCancelled)
            {
                var waiting = _queue.ToArray();
                _queue.Clear();
                foreach (var r in waiting)
                {
                    if (r.CancelRequested)
                    {
                        _admitted--;
                        OnnxGptTelemetry.QueueLength.Add(-1);
                        r.Fail(new OperationCanceledException("the request was cancelled before it got a slot."));
                        changed = true;
                    }
                    else
                    {
                        _queue.Enqueue(r);
                    }
                }
            }
        }

        while (true)
        {
            BatchRequest? request;
            lock (_lock)
            {
                if (!_queue.TryPeek(out request))
                {
                    return changed;
                }

                int slot = FindSlot(request.Prompt, out int common);
                if (slot < 0)
                {
                    return changed;
                }

                _queue.Dequeue();
                OnnxGptTelemetry.QueueLength.Add(-1);
                Place(request, slot, common);
                changed = true;
            }
        }
    }

    /// <summary>
    /// The slot for a prompt: the idle conversation sharing the longest prefix with it, if that covers at least half
    /// of its sequence (its own continuation, not another that merely starts the same way); else an empty slot; else
    /// the least recently used idle one. −1 when every slot is busy.
    /// </summary>
    private int FindSlot(int[] prompt, out int common)
    {
        int best = -1, empty = -1, oldest = -1;
        common = 0;
        for (int b = 0; b < Slots; b++)
        {
            if (_owners[b] is not null)
            {
                continue;
            }

            if (_rows[b] is not { } idle)
            {
                empty = empty < 0 ? b : empty;
                continue;
            }

            int shared = idle.Tokens.CommonPrefixLength(prompt);
            if (shared > common && 2 * shared >= idle.Length)
            {
                (best, common) = (b, shared);
            }

            if (oldest < 0 || _idleSince[b] < _idleSince[oldest])
            {
                oldest = b;
            }
        }

        return best >= 0 ? best : empty >= 0 ? empty : oldest;
    }

    /// <summary>Puts a request in a slot: continues the slot's conversation from the common prefix, or starts afresh.</summary>
    private void Place(BatchRequest request, int slot, int common)
    {
        var prompt = request.Prompt;
        Sequence sequence;
        if (common > 0)
        {
            sequence = _rows[slot]!;
            int keep = Math.Min(common, prompt.Length - 1);   // at least one prompt token to append: a fresh generation
            sequence.RewindTo(keep);
            sequence.SetOptions(request.Options);
            sequence.Append(prompt.AsSpan(keep));
        }
        else
        {
            sequence = new Sequence(request.Options, _eos, _tokenizer) { MoreEndTokens = _moreEnds };
            sequence.Reserve((int)Math.Min(SlotTokens, (long)prompt.Length + request.Options.MaxNewTokens));
            sequence.Append(prompt);
            _rows[slot] = sequence;
        }

        if (request.ResumeRandomState is { } resume)
        {
            sequence.RestoreRandomState(resume);
        }

        sequence.LogitsProcessor = request.LogitsProcessor;
        sequence.Constraint = Generator.StartConstraint(_model, request.Options.Constraint, request.Options, _eos);
        sequence.Begin(request.SubmittedAt, full: sequence.Length >= SlotTokens);
        _step.Rewind();   // the step's rule: a row keeps at most all but its last token cached
        _owners[slot] = request;
        _lastOwners[slot] = request;
        OnnxGptTelemetry.ActiveSequences.Add(1);
        UpdateCounts();   // before its first token can reach anyone who then reads the statistics
        request.Place(slot, sequence.Cached);
        if (sequence.FinishReason != FinishReason.None)
        {
            Leave(slot, keep: true);   // max_tokens 0: nothing to generate
            request.Finish(Generator.Result(slot, sequence), sequence.RandomState);
        }
    }

    /// <summary>A request leaves its slot: the conversation stays there for reuse (within the idle limit), or the slot empties.</summary>
    private void Leave(int slot, bool keep)
    {
        _owners[slot] = null;
        _speculators[slot]?.Dispose();
        _speculators[slot] = null;
        OnnxGptTelemetry.ActiveSequences.Add(-1);
        lock (_lock)
        {
            _admitted--;
        }

        if (!keep || Options.MaxIdleConversations == 0)
        {
            _rows[slot] = null;
            UpdateCounts();
            return;
        }

        _idleSince[slot] = Stopwatch.GetTimestamp();
        int idle = 0, oldest = -1;
        for (int b = 0; b < Slots; b++)
        {
            if (_owners[b] is null && _rows[b] is not null)
            {
                idle++;
                oldest = oldest < 0 || _idleSince[b] < _idleSince[oldest] ? b : oldest;
            }
        }

        if (idle > Options.MaxIdleConversations)
        {
            _rows[oldest] = null;
        }

        UpdateCounts();
    }

    /// <summary>A copy of a saved random state, checked now so a bad one fails the submit, not the engine's step.</summary>
    private static ulong[] DeterministicRandomState(IReadOnlyList<ulong> state)
    {
        OnnxGpt.Contracts.DeterministicRandom.FromState(state);
        return [.. state];
    }

    private void UpdateCounts()
    {
        int active = 0, idle = 0;
        for (int b = 0; b < Slots; b++)
        {
            active += _owners[b] is not null ? 1 : 0;
            idle += _owners[b] is null && _rows[b] is not null ? 1 : 0;
        }

        Volatile.Write(ref _active, active);
        Volatile.Write(ref _idle, idle);
    }
}

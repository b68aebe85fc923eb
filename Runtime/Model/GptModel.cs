using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Native;
using OnnxGpt.Runtime.Providers;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Runtime.Model;

/// <summary>
/// A GPT ONNX model loaded once: owns the ONNX Runtime session and knows the model's config, tokenizer,
/// generation defaults and graph signature. Thread-safe to share: any number of <see cref="Generator"/>s, on any
/// threads, run on one model. KV caches are allocated through the session's allocator for the device of its first
/// execution provider (<see cref="CacheDevice"/>), so on CUDA the keys and values stay on the GPU between steps.
/// <see cref="Dispose"/> releases the native session; it waits for runs in flight to finish (and frees the session
/// once the last cache allocated from it is freed), and any later use throws <see cref="ObjectDisposedException"/>.
/// </summary>
public sealed class GptModel : IDisposable
{
    private readonly InferenceSession _session;
    private readonly InferenceSession? _firstStepSession;
    private readonly Lazy<ITextTokenizer?> _tokenizer;
    private readonly Lock _cacheLock = new();
    private OrtAllocator? _cacheAllocator;
    private OrtMemoryInfo? _cacheMemoryInfo;
    private int _cacheBuffers;
    private bool _releasePending;
    private int _activeRuns;
    private volatile bool _disposed;

    private GptModel(ModelLayout layout, InferenceSession session, InferenceSession? firstStep, IReadOnlyList<ExecutionProviderOptions> providers)
    {
        string modelPath = layout.ModelPath;
        ModelPath = modelPath;
        Folder = layout.Folder;
        _session = session;
        _firstStepSession = firstStep;
        Providers = providers;
        Metadata = new Dictionary<string, string>(session.ModelMetadata.CustomMetadataMap, StringComparer.Ordinal);
        var genai = layout.GenAiConfigPath is { } genaiPath ? GenAiDescription.Read(genaiPath) : null;
        // Our own export's graph follows the convention its metadata names; a GenAI config declares the names of others.
        var names = Metadata.ContainsKey(MetadataKeys.Config) ? null : genai?.Names;
        Signature = ModelSignature.Read(session, modelPath, names);
        if (firstStep is not null)
        {
            FirstStepSignature = ModelSignature.Read(firstStep, layout.FirstStepPath!, names);
            ModelSignature.CheckPair(FirstStepSignature, layout.FirstStepPath!, Signature, modelPath);
            if (Signature.IsFused)
            {
                throw new OnnxGptException($"{modelPath}: a fused graph (cache written in place) cannot be split into a first-step decoder and a decoder with past.");
            }
        }

        var description = ModelDescription.Read(Metadata, layout, Signature, genai);
        (Config, ConfigSource) = (description.Config, description.Source);
        EndTokenIds = Config.EosTokenId is { } end ? [end, .. description.EndTokenIds.Where(t => t != end)] : description.EndTokenIds;
        ModelConsistency.CheckShape(modelPath, description);
        Layout = layout with
        {
            Kind = Metadata.ContainsKey(MetadataKeys.Config) ? ModelLayoutKind.OnnxGpt
                : Signature.Convention == ModelSignature.ModelZooConvention ? ModelLayoutKind.ModelZoo
                : layout.Kind,
        };
        if (Metadata.TryGetValue(MetadataKeys.Tokenizer, out var tokenizer))
        {
            TokenizerSpec = TokenizerSpec.FromJson(tokenizer, $"{modelPath} (metadata '{MetadataKeys.Tokenizer}')");
        }
        else
        {
            // Exported elsewhere: tokenizer files beside the model, or GPT-2's own vocabulary by its size.
            try
            {
                TokenizerSpec = TokenizerFactory.Infer(Folder, Config.VocabSize);
            }
            catch (OnnxGptException)
            {
                TokenizerSpec = null;
            }
        }

        // Built now, not on first use: the tokenizer is one of the parts checked against the others below.
        var built = TokenizerSpec is { } spec ? TokenizerFactory.Create(spec, Folder) : null;
        _tokenizer = new Lazy<ITextTokenizer?>(built);

        GenerationDefaults = Metadata.TryGetValue(MetadataKeys.Generation, out var generation)
            ? GenerationDefaults.FromJson(generation, $"{modelPath} (metadata '{MetadataKeys.Generation}')")
            : description.Defaults ?? new GenerationDefaults();
        ModelConsistency.Check(modelPath, Config, ConfigSource, built, Metadata, GenerationDefaults);
    }

    /// <summary>The <c>.onnx</c> file, as a full path.</summary>
    public string ModelPath { get; }

    /// <summary>
    /// The folder whose description and tokenizer files go with the model: the model file's own, or for
    /// transformers.js' <c>onnx/</c> subfolder the one above it.
    /// </summary>
    public string Folder { get; }

    /// <summary>The convention the folder follows and the files that make the model (see <see cref="ModelLayout"/>).</summary>
    public ModelLayout Layout { get; }

    /// <summary>The model's shape, from its metadata (or a config file beside it).</summary>
    public GptConfig Config { get; }

    /// <summary>
    /// Every token that ends a sequence: <see cref="GptConfig.EosTokenId"/>, and for a folder whose <c>config.json</c>,
    /// <c>generation_config.json</c> or <c>genai_config.json</c> lists several <c>eos_token_id</c>s (Llama 3's, Qwen2's
    /// chat models) the others too; generation stops at any of them. Empty when the model has no end token.
    /// </summary>
    public IReadOnlyList<int> EndTokenIds { get; }

    /// <summary>Where <see cref="Config"/> was read: the model's metadata, or a config file beside it.</summary>
    public string ConfigSource { get; }

    /// <summary>The graph's I/O convention, element types and cache shape.</summary>
    public ModelSignature Signature { get; }

    /// <summary>The signature of a pair's first-step decoder (Optimum's <c>decoder_model.onnx</c>), or null.</summary>
    public ModelSignature? FirstStepSignature { get; }

    /// <summary>
    /// The tokenizer the model's metadata names (for a model exported elsewhere: the one its folder holds, or GPT-2's
    /// for a 50257-token vocabulary), or null when there is none.
    /// </summary>
    public TokenizerSpec? TokenizerSpec { get; }

    /// <summary>The tokenizer built from <see cref="TokenizerSpec"/> when the model loaded (and checked against its vocabulary), or null when there is none.</summary>
    public ITextTokenizer? Tokenizer => _tokenizer.Value;

    /// <summary>The execution providers the session was created with, in order, CPU last.</summary>
    public IReadOnlyList<ExecutionProviderOptions> Providers { get; }

    /// <summary>Generation defaults from the model's metadata (or a GenAI config); the built-in defaults otherwise.</summary>
    public GenerationDefaults GenerationDefaults { get; }

    /// <summary>The model's <c>metadata_props</c>.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>
    /// Where KV caches live: <c>cpu</c> (host memory from the session's CPU allocator), or <c>cuda:N</c> when the
    /// first provider is CUDA or TensorRT (device memory from the session's CUDA allocator; then only the logits come
    /// back to the host each step).
    /// </summary>
    public string CacheDevice => Providers.Count > 0 && Providers[0] is CudaProvider or TensorRtProvider ? $"cuda:{CudaDeviceId}" : "cpu";

    private int CudaDeviceId => Providers[0] switch
    {
        CudaProvider c => c.DeviceId,
        TensorRtProvider t => t.DeviceId,
        _ => 0,
    };

    /// <summary>Whether <see cref="Dispose"/> has been called.</summary>
    public bool IsDisposed => _disposed;

    /// <summary>
    /// Loads a model: a <c>.onnx</c> file, or a model folder in any layout <see cref="ModelLayout"/> recognises
    /// (OnnxGpt's, ONNX Runtime GenAI's, Hugging Face Optimum's, transformers.js', the ONNX Model Zoo's), on the
    /// execution providers <paramref name="settings"/> asks for (by default the CPU with full graph optimisation). A
    /// provider that is not available is an error unless the settings allow CPU fallback, which is then logged on
    /// <paramref name="logger"/> as a warning.
    /// </summary>
    /// <exception cref="OnnxGptException">The file is missing, the folder follows no supported layout (the message lists
    /// what it holds and the layouts supported), a file is not a loadable ONNX model or not a decoder this runtime
    /// understands, or comes with no description (metadata or config file); the message names the path. Or a
    /// requested provider is not available.</exception>
    public static GptModel Load(string path, SessionSettings? settings = null, ILogger? logger = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var layout = CheckedLayout(path);
        using var prepared = SessionOptionsFactory.Create(settings ?? new SessionSettings(), logger ?? NullLogger.Instance);
        return Create(layout, prepared.Options, prepared.Providers);
    }

    /// <summary>Loads a model with session options the caller built (and keeps ownership of); <see cref="Providers"/> is then empty.</summary>
    public static GptModel Load(string path, SessionOptions sessionOptions)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(sessionOptions);
        return Create(CheckedLayout(path), sessionOptions, []);
    }

    private static GptModel Create(ModelLayout layout, SessionOptions options, IReadOnlyList<ExecutionProviderOptions> providers)
    {
        var session = OpenSession(layout.ModelPath, options);
        InferenceSession? firstStep = null;
        try
        {
            firstStep = layout.FirstStepPath is { } first ? OpenSession(first, options) : null;
            return new GptModel(layout, session, firstStep, providers);
        }
        catch
        {
            firstStep?.Dispose();
            session.Dispose();
            throw;
        }
    }

    private static InferenceSession OpenSession(string modelPath, SessionOptions options)
    {
        try
        {
            return new InferenceSession(modelPath, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new OnnxGptException($"cannot load the ONNX model '{modelPath}': {e.Message.Trim()} Is it a complete, valid ONNX file?", e);
        }
    }

    /// <summary>
    /// A generator for one sequence or one batch; see <see cref="Generator"/>. <paramref name="options"/> default to
    /// the model's <see cref="GenerationDefaults"/>; <paramref name="settings"/> to the KV cache on, no truncation.
    /// </summary>
    public Generator CreateGenerator(GenerationOptions? options = null, GeneratorOptions? settings = null)
    {
        ThrowIfDisposed();
        return new Generator(this, options ?? GenerationOptions.FromDefaults(GenerationDefaults), settings ?? new GeneratorOptions());
    }

    /// <summary>
    /// One-shot: encodes <paramref name="prompt"/> with the model's tokenizer, generates until done and returns the
    /// generated text (without the prompt). For streaming, batches or token ids use <see cref="CreateGenerator"/>.
    /// </summary>
    /// <exception cref="OnnxGptException">The model has no tokenizer, or the prompt does not fit the context.</exception>
    public string GenerateText(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        using var generator = CreateGenerator(options);
        generator.AppendText(prompt);
        return generator.GenerateAll(cancellationToken)[0].Text ?? string.Empty;
    }

    /// <summary>The session, for the runtime's own types; callers must bracket runs with <see cref="EnterRun"/>.</summary>
    internal InferenceSession Session
    {
        get
        {
            ThrowIfDisposed();
            return _session;
        }
    }

    /// <summary>A pair's first-step decoder session (run when nothing is cached), or null; bracketed like <see cref="Session"/>.</summary>
    internal InferenceSession? FirstStepSession
    {
        get
        {
            ThrowIfDisposed();
            return _firstStepSession;
        }
    }

    /// <summary>Marks a run in flight so <see cref="Dispose"/> waits for it; throws if the model is disposed.</summary>
    internal void EnterRun()
    {
        Interlocked.Increment(ref _activeRuns);
        if (_disposed)
        {
            Interlocked.Decrement(ref _activeRuns);
            ThrowIfDisposed();
        }
    }

    internal void ExitRun() => Interlocked.Decrement(ref _activeRuns);

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>
    /// Allocates <paramref name="bytes"/> for a KV cache through the session's allocator for <see cref="CacheDevice"/>
    /// (zeroed when it is host memory; with <paramref name="hugePages"/>, host memory of at least 1 MiB on Linux is
    /// offered to the kernel's transparent huge pages). Free it with <see cref="DeviceBuffer.Dispose"/>.
    /// </summary>
    /// <exception cref="OnnxGptException">The buffer is larger than ONNX Runtime's allocator takes (4 GiB).</exception>
    internal DeviceBuffer AllocateCache(long bytes, bool hugePages = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        if (bytes > uint.MaxValue)
        {
            throw new OnnxGptException(
                $"{ModelPath}: one KV cache tensor would take {bytes} bytes, more than ONNX Runtime's allocator takes at once (4 GiB); use fewer sequences or a shorter context.");
        }

        lock (_cacheLock)
        {
            ThrowIfDisposed();
            if (_cacheAllocator is null)
            {
                _cacheMemoryInfo = CacheDevice == "cpu"
                    ? OrtMemoryInfo.DefaultInstance
                    : new OrtMemoryInfo(OrtMemoryInfo.allocatorCUDA, OrtAllocatorType.DeviceAllocator, CudaDeviceId, OrtMemType.Default);
                _cacheAllocator = new OrtAllocator(_session, _cacheMemoryInfo);
            }

            var allocation = _cacheAllocator.Allocate((uint)bytes);
            _cacheBuffers++;
            return new DeviceBuffer(allocation, bytes, CacheDevice == "cpu", _cacheMemoryInfo!.DangerousGetHandle(), FreeCache, hugePages);
        }
    }

    /// <summary>Cache buffers allocated from the session and not yet freed.</summary>
    internal int LiveCacheBuffers
    {
        get
        {
            lock (_cacheLock)
            {
                return _cacheBuffers;
            }
        }
    }

    private void FreeCache(DeviceBuffer buffer)
    {
        lock (_cacheLock)
        {
            buffer.Allocation!.Dispose();
            _cacheBuffers--;
            if (_releasePending && _cacheBuffers == 0)
            {
                ReleaseNative();
            }
        }
    }

    /// <summary>Releases the session's native memory, after any run in flight has finished (and the last cache is freed).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        var wait = new SpinWait();
        while (Volatile.Read(ref _activeRuns) > 0)
        {
            wait.SpinOnce();
        }

        lock (_cacheLock)
        {
            // A generator not yet disposed still holds memory from the session's allocator: free the session after it.
            if (_cacheBuffers > 0)
            {
                _releasePending = true;
            }
            else
            {
                ReleaseNative();
            }
        }
    }

    private void ReleaseNative()
    {
        _cacheAllocator?.Dispose();
        _cacheAllocator = null;
        if (_cacheMemoryInfo is not null && !ReferenceEquals(_cacheMemoryInfo, OrtMemoryInfo.DefaultInstance))
        {
            _cacheMemoryInfo.Dispose();
        }

        _session.Dispose();
        _firstStepSession?.Dispose();
    }

    /// <summary>One line: layout and files, shape and I/O convention.</summary>
    public override string ToString() =>
        $"{Layout}: {Config.Layers} layers, {Config.Heads} heads, width {Config.Width}, vocabulary {Config.VocabSize}, " +
        $"context {Config.ContextLength}, {Signature.Convention} I/O";

    /// <summary>
    /// The layout at <paramref name="path"/>, its graph files checked first: ONNX Runtime opens them and their external
    /// data itself, so they must be regular files, or a FIFO under their names would block the load forever.
    /// </summary>
    private static ModelLayout CheckedLayout(string path)
    {
        var layout = ModelLayout.Find(path);
        foreach (var file in new[] { layout.ModelPath, layout.FirstStepPath })
        {
            if (file is null)
            {
                continue;
            }

            InputFile.EnsureRegular(file, "ONNX model file");
            // OnnxGpt's and Optimum's external data name, and transformers.js'.
            foreach (var data in new[] { file + ".data", file + "_data" })
            {
                if (InputFile.Exists(data))
                {
                    InputFile.EnsureRegular(data, "external data file");
                }
            }
        }

        return layout;
    }
}

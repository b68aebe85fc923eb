using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OnnxGpt.Runtime.Batching;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Orleans.Hosting;

/// <summary>
/// A silo's model and batch engine, started with the silo (before it takes grain calls) and stopped with it: the
/// engine whose slots the silo's conversations live in, and what a turn needs from the model (tokenizer, chat
/// template, generation defaults).
/// </summary>
internal sealed class ConversationEngineHost(IOptions<ConversationSiloOptions> options, ILogger<ConversationEngineHost> logger)
    : ILifecycleParticipant<ISiloLifecycle>, IDisposable
{
    private readonly ConversationSiloOptions _options = options.Value;
    private GptModel? _model;
    private BatchEngine? _engine;
    private bool _ownsModel;

    public ConversationSiloOptions Options => _options;

    public GptModel Model => _model ?? throw NotStarted();

    public BatchEngine Engine => _engine ?? throw NotStarted();

    public ITextTokenizer Tokenizer => Model.Tokenizer!;

    public IChatTemplate Template { get; private set; } = ChatTemplate.Default;

    public GenerationOptions Defaults { get; private set; } = new();

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(ConversationEngineHost), ServiceLifecycleStage.ApplicationServices, _ => Start(), _ => Stop());

    /// <summary>Loads the model (unless given one) and starts the engine.</summary>
    /// <exception cref="OnnxGptException">The model has no tokenizer, or its graph does not write its cache in place (the batch engine's message says what to do).</exception>
    public Task Start()
    {
        if (_engine is not null)
        {
            return Task.CompletedTask;
        }

        _options.Validate();
        _ownsModel = _options.Model is null;
        var model = _options.Model ?? GptModel.Load(_options.ModelPath!, _options.Session, logger);
        try
        {
            if (model.Tokenizer is null)
            {
                throw new OnnxGptException($"{model.ModelPath}: the model has no tokenizer, and conversations need one to turn messages and text into tokens.");
            }

            Template = ChatTemplate.ForModel(model);
            Defaults = GenerationOptions.FromDefaults(model.GenerationDefaults);
            _engine = BatchEngine.Start(model, new BatchEngineOptions
            {
                Slots = _options.Slots,
                SlotTokens = _options.SlotTokens,
                PrefillChunkTokens = _options.PrefillChunkTokens,
                // A live conversation holds its slot (the ledger admits no more conversations than slots), so a turn
                // never waits for one; the queue only takes a turn arriving while its own previous one leaves.
                MaxQueuedRequests = _options.Slots,
                MaxIdleConversations = _options.Slots,
            }, logger);
            _model = model;
        }
        catch
        {
            if (_ownsModel)
            {
                model.Dispose();
            }

            throw;
        }

        return Task.CompletedTask;
    }

    public Task Stop()
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        _engine?.Dispose();
        _engine = null;
        if (_ownsModel)
        {
            _model?.Dispose();
        }

        _model = null;
    }

    private static InvalidOperationException NotStarted() =>
        new("the silo's conversation engine is not running: it starts with the silo (AddOnnxGptConversations) and stops with it.");
}

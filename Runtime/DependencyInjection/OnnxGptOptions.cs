using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Providers;

namespace OnnxGpt.Runtime.DependencyInjection;

/// <summary>
/// Settings of the model and chat client that <c>services.AddOnnxGpt(...)</c> registers, bindable from
/// configuration (by convention the <see cref="SectionName"/> section of <c>appsettings.json</c>):
/// <code>
/// "OnnxGpt": { "ModelPath": "models/demo", "ExecutionProviders": "cpu", "MaxOutputTokens": 128, "BatchSlots": 8 }
/// </code>
/// Generation settings left null take the model's own defaults (its metadata).
/// </summary>
public sealed class OnnxGptOptions
{
    /// <summary>The configuration section these options are usually bound from.</summary>
    public const string SectionName = "OnnxGpt";

    /// <summary>The model folder (or <c>.onnx</c> file). Required.</summary>
    public string? ModelPath { get; set; }

    /// <summary>The model id the chat client reports; null: the model folder's name.</summary>
    public string? ModelId { get; set; }

    /// <summary>Execution providers in order of preference, comma-separated: <c>cpu</c>, <c>cuda[:DEVICE]</c>, <c>tensorrt[:DEVICE]</c>, <c>coreml</c>, <c>directml[:DEVICE]</c>.</summary>
    public string ExecutionProviders { get; set; } = "cpu";

    /// <summary>Run on the CPU, with a logged warning, when a requested provider is not available.</summary>
    public bool AllowCpuFallback { get; set; }

    /// <summary>ONNX Runtime's intra-op threads on the CPU; null or 0: ONNX Runtime's choice (one per physical core).</summary>
    public int? IntraOpThreads { get; set; }

    /// <summary>Finished conversations kept with their KV caches (see <see cref="OnnxGptChatClientOptions.MaxCachedConversations"/>); 0 turns reuse off.</summary>
    public int MaxCachedConversations { get; set; } = 4;

    /// <summary>
    /// Sequences the chat client's batch engine decodes together on a fused graph, so concurrent requests share each
    /// step (see <see cref="OnnxGptChatClientOptions.BatchSlots"/>); 0: one generator per request.
    /// </summary>
    public int BatchSlots { get; set; } = 4;

    /// <summary>With the batch engine: requests that may wait for a slot before one is refused (see <see cref="OnnxGptChatClientOptions.MaxQueuedRequests"/>).</summary>
    public int MaxQueuedRequests { get; set; } = 64;

    /// <summary>With the batch engine: most prompt tokens a joining request feeds per step (see <see cref="OnnxGptChatClientOptions.PrefillChunkTokens"/>).</summary>
    public int PrefillChunkTokens { get; set; } = 128;

    /// <summary>Drop a conversation's oldest messages when it does not fit the context (see <see cref="OnnxGptChatClientOptions.DropOldMessages"/>).</summary>
    public bool DropOldMessages { get; set; }

    /// <summary>The prompt format; null: the one in the model's metadata, else <see cref="Chat.ChatTemplate.Default"/>.</summary>
    public ChatTemplateOptions? ChatTemplate { get; set; }

    /// <summary>Most tokens in a reply when a request does not say.</summary>
    public int? MaxOutputTokens { get; set; }

    /// <summary>Sampling temperature when a request does not say; 0 means greedy.</summary>
    public double? Temperature { get; set; }

    /// <summary>Nucleus sampling threshold when a request does not say; 1 turns it off.</summary>
    public double? TopP { get; set; }

    /// <summary>Top-k when a request does not say; 0 turns it off.</summary>
    public int? TopK { get; set; }

    /// <summary>Hugging Face repetition penalty when a request does not say; 1 turns it off.</summary>
    public double? RepetitionPenalty { get; set; }

    /// <summary>The session settings these options describe.</summary>
    /// <exception cref="ArgumentException"><see cref="ExecutionProviders"/> does not parse, or <see cref="IntraOpThreads"/> is negative.</exception>
    public SessionSettings ToSessionSettings()
    {
        var providers = ExecutionProviderOptions.ParseList(string.IsNullOrWhiteSpace(ExecutionProviders) ? "cpu" : ExecutionProviders).ToList();
        if (IntraOpThreads is { } threads)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(threads, nameof(IntraOpThreads));
            int at = providers.FindIndex(p => p is CpuProvider);
            if (at >= 0)
            {
                providers[at] = (CpuProvider)providers[at] with { IntraOpThreads = threads };
            }
            else
            {
                providers.Add(new CpuProvider(threads));
            }
        }

        return new SessionSettings { Providers = providers, AllowCpuFallback = AllowCpuFallback };
    }

    /// <summary>The chat client options these options describe, generation settings over <paramref name="modelDefaults"/>.</summary>
    /// <exception cref="OnnxGptException">The chat template is invalid.</exception>
    public OnnxGptChatClientOptions ToChatClientOptions(GenerationOptions modelDefaults) => ToChatClientOptions(modelDefaults, withTemplate: true);

    internal OnnxGptChatClientOptions ToChatClientOptions(GenerationOptions modelDefaults, bool withTemplate)
    {
        ArgumentNullException.ThrowIfNull(modelDefaults);
        return new OnnxGptChatClientOptions
        {
            ModelId = ModelId,
            MaxCachedConversations = MaxCachedConversations,
            BatchSlots = BatchSlots,
            MaxQueuedRequests = MaxQueuedRequests,
            PrefillChunkTokens = PrefillChunkTokens,
            DropOldMessages = DropOldMessages,
            ChatTemplate = withTemplate && ChatTemplate is { } template ? new ChatTemplate(template.ToSpec()) : null,
            DefaultGenerationOptions = new GenerationOverrides
            {
                MaxNewTokens = MaxOutputTokens,
                Temperature = Temperature,
                TopP = TopP,
                TopK = TopK,
                RepetitionPenalty = RepetitionPenalty,
            }.ApplyTo(modelDefaults),
        };
    }
}

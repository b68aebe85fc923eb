using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.DependencyInjection;

/// <summary>
/// A chat template as configuration binds it (<c>"OnnxGpt": { "ChatTemplate": { ... } }</c>): each field left out
/// takes the plain template's value (<see cref="ChatTemplateSpec.Plain"/>); <see cref="StopSequences"/>, when given,
/// replaces the plain ones.
/// </summary>
public sealed class ChatTemplateOptions
{
    /// <summary>See <see cref="ChatTemplateSpec.Prefix"/>.</summary>
    public string? Prefix { get; set; }

    /// <summary>See <see cref="ChatTemplateSpec.SystemMessage"/>; must contain <c>{content}</c>.</summary>
    public string? SystemMessage { get; set; }

    /// <summary>See <see cref="ChatTemplateSpec.UserMessage"/>; must contain <c>{content}</c>.</summary>
    public string? UserMessage { get; set; }

    /// <summary>See <see cref="ChatTemplateSpec.AssistantMessage"/>; must contain <c>{content}</c>.</summary>
    public string? AssistantMessage { get; set; }

    /// <summary>See <see cref="ChatTemplateSpec.OtherMessage"/>; must contain <c>{content}</c>.</summary>
    public string? OtherMessage { get; set; }

    /// <summary>See <see cref="ChatTemplateSpec.GenerationPrompt"/>.</summary>
    public string? GenerationPrompt { get; set; }

    /// <summary>See <see cref="ChatTemplateSpec.StopSequences"/>.</summary>
    public List<string>? StopSequences { get; set; }

    /// <summary>The template these options describe, validated.</summary>
    /// <exception cref="OnnxGptException">A field is invalid; the message names it.</exception>
    public ChatTemplateSpec ToSpec()
    {
        var plain = ChatTemplateSpec.Plain;
        var spec = new ChatTemplateSpec
        {
            Prefix = Prefix ?? plain.Prefix,
            SystemMessage = SystemMessage ?? plain.SystemMessage,
            UserMessage = UserMessage ?? plain.UserMessage,
            AssistantMessage = AssistantMessage ?? plain.AssistantMessage,
            OtherMessage = OtherMessage ?? plain.OtherMessage,
            GenerationPrompt = GenerationPrompt ?? plain.GenerationPrompt,
            StopSequences = StopSequences is null ? plain.StopSequences : [.. StopSequences],
        };
        spec.Validate($"{OnnxGptOptions.SectionName}:{nameof(OnnxGptOptions.ChatTemplate)}");
        return spec;
    }
}

using System.Text;
using Microsoft.Extensions.AI;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Model;

namespace OnnxGpt.Runtime.Chat;

/// <summary>
/// An <see cref="IChatTemplate"/> from a <see cref="ChatTemplateSpec"/>: one text per message by role with its
/// <c>{content}</c> filled in, then the generation prompt. <see cref="Default"/> renders
/// <code>
/// System: You are terse.
/// User: Hello
/// Assistant: Hi.
/// User: How are you?
/// Assistant:
/// </code>
/// and stops the reply where the model starts a new <c>User:</c>, <c>Assistant:</c> or <c>System:</c> line.
/// </summary>
public sealed class ChatTemplate : IChatTemplate
{
    /// <summary>A template from <paramref name="spec"/>.</summary>
    /// <exception cref="OnnxGptException">The spec is invalid (see <see cref="ChatTemplateSpec.Validate"/>).</exception>
    public ChatTemplate(ChatTemplateSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        Spec = spec;
        StopSequences = [.. spec.StopSequences];
    }

    /// <summary>The plain default, <see cref="ChatTemplateSpec.Plain"/>.</summary>
    public static ChatTemplate Default { get; } = new(ChatTemplateSpec.Plain);

    /// <summary>What this template renders.</summary>
    public ChatTemplateSpec Spec { get; }

    /// <inheritdoc/>
    public IReadOnlyList<string> StopSequences { get; }

    /// <summary>
    /// The template stored in the model's metadata (<see cref="MetadataKeys.ChatTemplate"/>), or <see cref="Default"/>
    /// when it has none.
    /// </summary>
    /// <exception cref="OnnxGptException">The stored template is invalid; the message names the model file and the key.</exception>
    public static ChatTemplate ForModel(GptModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Metadata.TryGetValue(MetadataKeys.ChatTemplate, out var json)
            ? new ChatTemplate(ChatTemplateSpec.FromJson(json, $"{model.ModelPath} (metadata '{MetadataKeys.ChatTemplate}')"))
            : Default;
    }

    /// <inheritdoc/>
    public string Render(IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var text = new StringBuilder(Spec.Prefix);
        foreach (var message in messages)
        {
            ArgumentNullException.ThrowIfNull(message, nameof(messages));
            var role = message.Role;
            string format = role == ChatRole.System ? Spec.SystemMessage
                : role == ChatRole.User ? Spec.UserMessage
                : role == ChatRole.Assistant ? Spec.AssistantMessage
                : Spec.OtherMessage.Replace(ChatTemplateSpec.RolePlaceholder, role.Value, StringComparison.Ordinal);
            text.Append(format.Replace(ChatTemplateSpec.ContentPlaceholder, message.Text, StringComparison.Ordinal));
        }

        return text.Append(Spec.GenerationPrompt).ToString();
    }
}

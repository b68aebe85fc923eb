using Microsoft.Extensions.Options;
using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Runtime.DependencyInjection;

/// <summary>Checks <see cref="OnnxGptOptions"/> when they are first read, naming each setting that is wrong.</summary>
internal sealed class OnnxGptOptionsValidator : IValidateOptions<OnnxGptOptions>
{
    public ValidateOptionsResult Validate(string? name, OnnxGptOptions options)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.ModelPath))
        {
            failures.Add($"{OnnxGptOptions.SectionName}:{nameof(OnnxGptOptions.ModelPath)} is required: the model folder (or .onnx file).");
        }

        try
        {
            options.ToSessionSettings();
        }
        catch (ArgumentException e)
        {
            failures.Add($"{OnnxGptOptions.SectionName}:{nameof(OnnxGptOptions.ExecutionProviders)}/{nameof(OnnxGptOptions.IntraOpThreads)}: {e.Message}");
        }

        // The batch engine's settings each on their own (the chat client's check stops at its first problem).
        foreach (var (setting, value, least, meaning) in new[]
        {
            (nameof(OnnxGptOptions.BatchSlots), options.BatchSlots, 0, "0: one generator per request"),
            (nameof(OnnxGptOptions.MaxQueuedRequests), options.MaxQueuedRequests, 0, "0: no queue, a request finding every slot busy is refused"),
            (nameof(OnnxGptOptions.PrefillChunkTokens), options.PrefillChunkTokens, 1, "prompt tokens per step"),
        })
        {
            if (value < least)
            {
                failures.Add($"{OnnxGptOptions.SectionName}:{setting} must be at least {least} ({meaning}); found {value}.");
            }
        }

        try
        {
            options.ToChatClientOptions(new GenerationOptions(), withTemplate: false).Validate();
        }
        catch (ArgumentException e)
        {
            failures.Add($"{OnnxGptOptions.SectionName}: {e.Message}");
        }

        try
        {
            options.ChatTemplate?.ToSpec();
        }
        catch (OnnxGptException e)
        {
            failures.Add(e.Message);
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

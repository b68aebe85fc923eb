// A console chat with a GPT model embedded through DI and Microsoft.Extensions.AI's IChatClient. appsettings.json
// picks the model (the Shakespeare model the repository ships: you are Romeo, it answers as Juliet) and the template.
// Run from the repository root:  dotnet run --project Runtime/Samples/ChatSample [-- --OnnxGpt:ModelPath OTHER_DIR]
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OnnxGpt;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.DependencyInjection;

var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Services.AddOnnxGpt(builder.Configuration.GetSection(OnnxGptOptions.SectionName));   // model + IChatClient, from appsettings.json
using var host = builder.Build();

IChatClient chat;
try
{
    chat = host.Services.GetRequiredService<IChatClient>();   // loads the model on first use
}
catch (OnnxGpt.OnnxGptException e)
{
    Console.Error.WriteLine($"cannot load the model: {e.Message}");
    return 1;
}

var history = new List<ChatMessage>();
Console.WriteLine($"Chatting with {chat.GetService<ChatClientMetadata>()?.DefaultModelId}; an empty line ends.");
while (Console.ReadLine() is { Length: > 0 } line)
{
    history.Add(new ChatMessage(ChatRole.User, line));
    var updates = new List<ChatResponseUpdate>();
    try
    {
        await foreach (var update in chat.GetStreamingResponseAsync(history))   // the conversation's KV cache is reused turn to turn
        {
            Console.Write(update.Text);
            updates.Add(update);
        }
    }
    catch (OnnxGpt.OnnxGptException e)   // e.g. a character the model's vocabulary lacks
    {
        Console.Error.WriteLine(e.Message);
        history.RemoveAt(history.Count - 1);
        continue;
    }

    var reply = updates.ToChatResponse();
    Console.WriteLine($"  [{reply.Usage?.InputTokenCount} prompt tokens, {reply.Usage?.CachedInputTokenCount} reused; {reply.Usage?.OutputTokenCount} new]");
    history.AddMessages(reply);
}

return 0;

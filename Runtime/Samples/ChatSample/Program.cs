// A console chat with a GPT model embedded through DI and Microsoft.Extensions.AI's IChatClient.
// Run from the repository root after `dotnet pwsh ./build.ps1 demo` (which exports models/demo):
//   dotnet run --project Runtime/Samples/ChatSample [-- --OnnxGpt:ModelPath OTHER_MODEL_DIR]
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OnnxGpt.DependencyInjection;

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

var history = new List<ChatMessage> { new(ChatRole.System, "You are a helpful assistant.") };
Console.WriteLine($"Chatting with {chat.GetService<ChatClientMetadata>()?.DefaultModelId}; an empty line ends.");
while (Console.ReadLine() is { Length: > 0 } line)
{
    history.Add(new ChatMessage(ChatRole.User, line));
    var updates = new List<ChatResponseUpdate>();
    await foreach (var update in chat.GetStreamingResponseAsync(history))   // the conversation's KV cache is reused turn to turn
    {
        Console.Write(update.Text);
        updates.Add(update);
    }

    var reply = updates.ToChatResponse();
    Console.WriteLine($"  [{reply.Usage?.InputTokenCount} prompt tokens, {reply.Usage?.CachedInputTokenCount} reused; {reply.Usage?.OutputTokenCount} new]");
    history.AddMessages(reply);
}

return 0;

using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.DependencyInjection;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Providers;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.DependencyInjection;

/// <summary>services.AddOnnxGpt: options from configuration, validation, singletons, disposal.</summary>
[TestClass]
public sealed class AddOnnxGptTests
{
    private static TempFolder? s_tmp;
    private static string s_folder = "";

    public TestContext TestContext { get; set; } = null!;

    [ClassInitialize]
    public static void Initialize(TestContext _)
    {
        s_tmp = new TempFolder();
        s_folder = ChatModels.ExportTinyGpt2(s_tmp);
    }

    [ClassCleanup]
    public static void Cleanup() => s_tmp?.Dispose();

    [TestMethod]
    public async Task OptionsBoundFromConfigurationReachTheModelAndTheChatClient()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["OnnxGpt:ModelPath"] = s_folder,
            ["OnnxGpt:ModelId"] = "tiny-chat",
            ["OnnxGpt:ExecutionProviders"] = "cpu",
            ["OnnxGpt:IntraOpThreads"] = "1",
            ["OnnxGpt:MaxCachedConversations"] = "2",
            ["OnnxGpt:BatchSlots"] = "3",
            ["OnnxGpt:MaxQueuedRequests"] = "5",
            ["OnnxGpt:PrefillChunkTokens"] = "32",
            ["OnnxGpt:MaxOutputTokens"] = "3",
            ["OnnxGpt:Temperature"] = "0",
            ["OnnxGpt:DropOldMessages"] = "true",
            ["OnnxGpt:ChatTemplate:UserMessage"] = "Q: {content}\n",
            ["OnnxGpt:ChatTemplate:GenerationPrompt"] = "A:",
            ["OnnxGpt:ChatTemplate:StopSequences:0"] = "\nQ:",
        }).Build();
        var services = new ServiceCollection().AddOnnxGpt(configuration.GetSection(OnnxGptOptions.SectionName), o => o.TopK = 7);
        var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });

        var options = provider.GetRequiredService<IOptions<OnnxGptOptions>>().Value;
        Assert.AreEqual(2, options.MaxCachedConversations);
        Assert.AreEqual(7, options.TopK, "the delegate runs after the binding");
        var chat = provider.GetRequiredService<IChatClient>();
        var client = provider.GetRequiredService<OnnxGptChatClient>();
        var model = provider.GetRequiredService<GptModel>();
        Assert.AreSame(client, chat);
        Assert.AreSame(model, client.Model);
        Assert.AreSame(model, provider.GetRequiredService<GptModel>(), "one model per container");
        Assert.AreEqual(new CpuProvider(IntraOpThreads: 1), model.Providers.Single());
        Assert.AreEqual("tiny-chat", chat.GetService<ChatClientMetadata>()!.DefaultModelId);
        Assert.AreEqual(2, client.Options.MaxCachedConversations);
        Assert.AreEqual((3, 5, 32), (client.Options.BatchSlots, client.Options.MaxQueuedRequests, client.Options.PrefillChunkTokens));
        Assert.AreEqual(7, client.Options.DefaultGenerationOptions!.TopK);
        Assert.IsTrue(client.Options.DropOldMessages);
        var spec = ((ChatTemplate)client.Template).Spec;
        Assert.AreEqual("Q: {content}\n", spec.UserMessage);
        Assert.AreEqual(ChatTemplateSpec.Plain.AssistantMessage, spec.AssistantMessage, "fields left out keep the plain template's");
        CollectionAssert.AreEqual(new[] { "\nQ:" }, spec.StopSequences.ToArray(), "the configured stops replace the defaults");

        var response = await chat.GetResponseAsync("Hello", cancellationToken: TestContext.CancellationToken);
        Assert.AreEqual(3, response.Usage!.OutputTokenCount, "MaxOutputTokens from configuration is the default");
        var again = await chat.GetResponseAsync("Hello", cancellationToken: TestContext.CancellationToken);
        Assert.AreEqual(response.Text, again.Text, "Temperature 0 from configuration: greedy");

        await provider.DisposeAsync();
        Assert.IsTrue(model.IsDisposed, "the container disposes the model it created");
    }

    [TestMethod]
    public void InvalidOptionsFailWithEveryProblemNamed()
    {
        using var provider = new ServiceCollection()
            .AddOnnxGpt(o =>
            {
                o.ExecutionProviders = "gpu-please";
                o.MaxCachedConversations = -1;
                o.BatchSlots = -2;
                o.ChatTemplate = new ChatTemplateOptions { UserMessage = "Q:" };
            })
            .BuildServiceProvider();
        var e = Assert.ThrowsExactly<OptionsValidationException>(() => provider.GetRequiredService<IChatClient>());
        StringAssert.Contains(e.Message, "OnnxGpt:ModelPath is required");
        StringAssert.Contains(e.Message, "gpu-please");
        StringAssert.Contains(e.Message, "MaxCachedConversations");
        StringAssert.Contains(e.Message, "BatchSlots");
        StringAssert.Contains(e.Message, "OnnxGpt:ChatTemplate: 'user' must contain {content}");
    }

    [TestMethod]
    public void MissingModelFolderIsAnOnnxGptErrorNamingIt()
    {
        string missing = Path.Combine(s_tmp!.Path, "no-such-model");
        using var provider = new ServiceCollection().AddOnnxGpt(o => o.ModelPath = missing).BuildServiceProvider();
        var e = Assert.ThrowsExactly<OnnxGptException>(() => provider.GetRequiredService<IChatClient>());
        StringAssert.Contains(e.Message, missing);
    }

    [TestMethod]
    public void AddingTwiceRegistersOnce()
    {
        var services = new ServiceCollection().AddOnnxGpt(o => o.ModelPath = s_folder).AddOnnxGpt();
        Assert.AreEqual(1, services.Count(d => d.ServiceType == typeof(IChatClient)));
        Assert.AreEqual(1, services.Count(d => d.ServiceType == typeof(GptModel)));
        Assert.AreEqual(1, services.Count(d => d.ServiceType == typeof(IValidateOptions<OnnxGptOptions>)));
    }
}

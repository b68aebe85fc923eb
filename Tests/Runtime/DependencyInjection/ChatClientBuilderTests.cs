using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.DependencyInjection;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.DependencyInjection;

/// <summary>
/// OnnxGpt registered through Microsoft.Extensions.AI's builder: each middleware users chain runs over our client
/// (logging writes entries, OpenTelemetry starts an activity with our provider name and usage, the distributed cache
/// answers a repeated request without the model, function invocation sits in the pipeline), and two models live in
/// one container under keys.
/// </summary>
[TestClass]
public sealed class ChatClientBuilderTests
{
    private static TempFolder? s_tmp;
    private static string s_folder = "";
    private static string s_other = "";

    public TestContext TestContext { get; set; } = null!;

    [ClassInitialize]
    public static void Initialize(TestContext _)
    {
        s_tmp = new TempFolder();
        s_folder = ChatModels.ExportTinyGpt2(s_tmp);
        s_other = ChatModels.ExportTinyGpt2(s_tmp, "other");
    }

    [ClassCleanup]
    public static void Cleanup() => s_tmp?.Dispose();

    private static void Configure(OnnxGptOptions o, string folder, string id)
    {
        o.ModelPath = folder;
        o.ModelId = id;
        o.MaxOutputTokens = 4;
        o.Temperature = 0;
        o.IntraOpThreads = 1;
    }

    [TestMethod]
    public async Task LoggingAndOpenTelemetryComposeOverOurClient()
    {
        var logs = new CapturingLoggerProvider();
        var services = new ServiceCollection().AddLogging(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        services.AddOnnxGptChatClient(o => Configure(o, s_folder, "tiny-chat"))
            .UseLogging()
            .UseOpenTelemetry(sourceName: "OnnxGpt.Tests.MEAI");
        using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true });

        var activities = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == "OnnxGpt.Tests.MEAI",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activities.Enqueue,
        };
        ActivitySource.AddActivityListener(listener);

        var chat = provider.GetRequiredService<IChatClient>();
        Assert.IsNotInstanceOfType<OnnxGptChatClient>(chat, "the pipeline's outer client is the middleware");
        Assert.IsNotNull(chat.GetService<LoggingChatClient>());
        Assert.IsNotNull(chat.GetService<OpenTelemetryChatClient>());
        Assert.AreSame(provider.GetRequiredService<OnnxGptChatClient>(), chat.GetService<OnnxGptChatClient>());

        var response = await chat.GetResponseAsync("Hello there", cancellationToken: TestContext.CancellationToken);
        var direct = await provider.GetRequiredService<OnnxGptChatClient>().GetResponseAsync("Hello there", cancellationToken: TestContext.CancellationToken);
        Assert.AreEqual(direct.Text, response.Text, "the middleware passes our reply through unchanged");

        Assert.IsTrue(logs.Entries.Any(e => e.Category.Contains("LoggingChatClient", StringComparison.Ordinal) && e.Message.Contains("GetResponseAsync", StringComparison.Ordinal)),
            "LoggingChatClient logged the call: " + string.Join(" | ", logs.Entries.Select(e => $"{e.Category}: {e.Message}")));
        var activity = activities.Single();
        Assert.AreEqual("onnxgpt", activity.GetTagItem("gen_ai.provider.name"), "from our ChatClientMetadata");
        Assert.AreEqual("tiny-chat", activity.GetTagItem("gen_ai.request.model"), "the default model id from our metadata");
        Assert.AreEqual(response.Usage!.OutputTokenCount, Convert.ToInt64(activity.GetTagItem("gen_ai.usage.output_tokens")));
        Assert.AreEqual(response.Usage.InputTokenCount, Convert.ToInt64(activity.GetTagItem("gen_ai.usage.input_tokens")));
    }

    [TestMethod]
    public async Task DistributedCacheAnswersARepeatedRequestWithoutTheModel()
    {
        var services = new ServiceCollection().AddDistributedMemoryCache();
        services.AddOnnxGptChatClient(o => Configure(o, s_folder, "tiny-chat")).UseDistributedCache();
        using var provider = services.BuildServiceProvider();
        var chat = provider.GetRequiredService<IChatClient>();
        var ours = provider.GetRequiredService<OnnxGptChatClient>();
        var cancel = TestContext.CancellationToken;

        var first = await chat.GetResponseAsync("Once upon a time", cancellationToken: cancel);
        long fed = ours.ProcessedTokens;
        Assert.IsGreaterThan(0L, fed);
        var second = await chat.GetResponseAsync("Once upon a time", cancellationToken: cancel);
        Assert.AreEqual(first.Text, second.Text);
        Assert.AreEqual(fed, ours.ProcessedTokens, "the second answer came from the cache: the model ran no token");
        await chat.GetResponseAsync("Something else", cancellationToken: cancel);
        Assert.IsGreaterThan(fed, ours.ProcessedTokens, "a new request reaches the model");
    }

    [TestMethod]
    public async Task FunctionInvocationSitsInThePipelineAndPassesOurReplyThrough()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddOnnxGptChatClient(o => Configure(o, s_folder, "tiny-chat")).UseFunctionInvocation();
        using var provider = services.BuildServiceProvider();
        var chat = provider.GetRequiredService<IChatClient>();
        Assert.IsNotNull(chat.GetService<FunctionInvokingChatClient>());
        int called = 0;
        var options = new ChatOptions { Tools = [AIFunctionFactory.Create(() => ++called, "count")] };
        var response = await chat.GetResponseAsync("What is the count?", options, TestContext.CancellationToken);
        var direct = await provider.GetRequiredService<OnnxGptChatClient>().GetResponseAsync("What is the count?", options, TestContext.CancellationToken);
        Assert.AreEqual(direct.Text, response.Text);
        Assert.AreEqual(0, called, "the model calls no tools (it is not tool-tuned); the tool is never invoked");
    }

    [TestMethod]
    public async Task TwoModelsUnderTwoKeys()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddKeyedOnnxGptChatClient("small", o => Configure(o, s_folder, "small-model")).UseLogging();
        services.AddKeyedOnnxGptChatClient("other", o => Configure(o, s_other, "other-model"));
        using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true });

        var small = provider.GetRequiredKeyedService<IChatClient>("small");
        var other = provider.GetRequiredKeyedService<IChatClient>("other");
        Assert.AreEqual("small-model", small.GetService<ChatClientMetadata>()!.DefaultModelId);
        Assert.AreEqual("other-model", other.GetService<ChatClientMetadata>()!.DefaultModelId);
        Assert.AreNotSame(small.GetService<GptModel>(), other.GetService<GptModel>());
        Assert.AreSame(provider.GetRequiredKeyedService<GptModel>("small"), small.GetService<GptModel>());
        StringAssert.StartsWith(provider.GetRequiredKeyedService<GptModel>("other").Folder, s_other);
        Assert.IsNotNull(small.GetService<LoggingChatClient>(), "each key has its own pipeline");
        Assert.IsNull(other.GetService<LoggingChatClient>());
        Assert.IsNull(provider.GetService<IChatClient>(), "nothing registered without a key");

        var reply = await other.GetResponseAsync("Hi", cancellationToken: TestContext.CancellationToken);
        Assert.AreEqual("other-model", reply.ModelId);
    }

    [TestMethod]
    public void MetadataNamesProviderModelAndDefaultModel()
    {
        var services = new ServiceCollection();
        services.AddOnnxGptChatClient(o => Configure(o, s_folder, "tiny-chat"));
        using var provider = services.BuildServiceProvider();
        var metadata = provider.GetRequiredService<IChatClient>().GetService<ChatClientMetadata>()!;
        Assert.AreEqual("onnxgpt", metadata.ProviderName);
        Assert.AreEqual("tiny-chat", metadata.DefaultModelId);
        Assert.AreEqual(provider.GetRequiredService<GptModel>().ModelPath, metadata.ProviderUri!.LocalPath);
    }

    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        public ConcurrentQueue<(string Category, LogLevel Level, string Message)> Entries { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(CapturingLoggerProvider owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                owner.Entries.Enqueue((category, logLevel, formatter(state, exception)));
        }
    }
}

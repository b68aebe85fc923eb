using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Runtime.Providers;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Chat;

/// <summary>The IChatClient over a real tokenizer and checkpoint: replies, streaming, options, cache reuse, threads.</summary>
[TestClass]
public sealed class OnnxGptChatClientTests
{
    private static TempFolder? s_tmp;
    private static GptModel? s_model;

    public TestContext TestContext { get; set; } = null!;

    private static GptModel Model => s_model!;

    [ClassInitialize]
    public static void Initialize(TestContext _)
    {
        s_tmp = new TempFolder();
        s_model = GptModel.Load(ChatModels.ExportTinyGpt2(s_tmp));
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        s_model?.Dispose();
        s_tmp?.Dispose();
    }

    private static ChatOptions Greedy(int maxTokens = 12) => new() { Temperature = 0, MaxOutputTokens = maxTokens };

    [TestMethod]
    public async Task ReplyIsTheTrimmedGreedyContinuationOfTheRenderedPrompt()
    {
        using var client = new OnnxGptChatClient(Model);
        ChatMessage[] messages = [new(ChatRole.System, "You are terse."), new(ChatRole.User, "Hello there")];
        var response = await client.GetResponseAsync(messages, Greedy(), TestContext.CancellationToken);

        string prompt = ChatTemplate.Default.Render(messages);
        Assert.AreEqual("System: You are terse.\nUser: Hello there\nAssistant:", prompt);
        using var generator = Model.CreateGenerator(new GenerationOptions { DoSample = false, MaxNewTokens = 12, StopStrings = ChatTemplate.Default.StopSequences });
        generator.AppendText(prompt);
        var expected = generator.GenerateAll()[0];

        Assert.AreEqual(expected.Text!.Trim(), response.Text);
        Assert.AreEqual(ChatRole.Assistant, response.Messages.Single().Role);
        Assert.AreEqual(Model.Tokenizer!.Encode(prompt).Length, response.Usage!.InputTokenCount);
        Assert.AreEqual(expected.NewTokens, response.Usage.OutputTokenCount);
        Assert.AreEqual(response.Usage.InputTokenCount + response.Usage.OutputTokenCount, response.Usage.TotalTokenCount);
        Assert.AreEqual(0, response.Usage.CachedInputTokenCount);
        Assert.AreEqual(expected.FinishReason is FinishReason.MaxNewTokens ? ChatFinishReason.Length : ChatFinishReason.Stop, response.FinishReason);
        Assert.AreEqual("chat", response.ModelId, "the model id defaults to the model folder's name");
        StringAssert.StartsWith(response.ResponseId, "chatcmpl-");
    }

    [TestMethod]
    public async Task StreamedUpdatesMakeTheSameTextAndEndWithFinishReasonAndUsage()
    {
        using var client = new OnnxGptChatClient(Model, new OnnxGptChatClientOptions { MaxCachedConversations = 0 });
        ChatMessage[] messages = [new(ChatRole.User, "Write a long poem about the sea.")];
        var whole = await client.GetResponseAsync(messages, Greedy(20), TestContext.CancellationToken);

        var text = new StringBuilder();
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync(messages, Greedy(20), TestContext.CancellationToken))
        {
            updates.Add(update);
            text.Append(update.Text);
        }

        Assert.IsGreaterThan(2, updates.Count, "one update per token with text, then the final one");
        Assert.AreEqual(whole.Text, text.ToString());
        var last = updates[^1];
        Assert.AreEqual(whole.FinishReason, last.FinishReason);
        var usage = last.Contents.OfType<UsageContent>().Single().Details;
        Assert.AreEqual(whole.Usage!.OutputTokenCount, usage.OutputTokenCount);
        Assert.IsTrue(updates.Take(updates.Count - 1).All(u => u.FinishReason is null && u.Role == ChatRole.Assistant));
        Assert.AreEqual(1, updates.Select(u => u.ResponseId).Distinct().Count(), "every update belongs to one response");
    }

    [TestMethod]
    public async Task SecondTurnFeedsOnlyItsNewTokensAndRepliesAsAFreshClientWould()
    {
        using var client = new OnnxGptChatClient(Model);
        using var fresh = new OnnxGptChatClient(Model, new OnnxGptChatClientOptions { MaxCachedConversations = 0 });
        var messages = new List<ChatMessage> { new(ChatRole.User, "Tell me a story about a cat.") };
        var first = await client.GetResponseAsync(messages, Greedy(), TestContext.CancellationToken);
        messages.AddMessages(first);
        messages.Add(new ChatMessage(ChatRole.User, "And then what happened?"));

        long before = client.ProcessedTokens;
        var second = await client.GetResponseAsync(messages, Greedy(), TestContext.CancellationToken);
        long fed = client.ProcessedTokens - before;

        int prompt = Model.Tokenizer!.Encode(ChatTemplate.Default.Render(messages)).Length;
        long cached = second.Usage!.CachedInputTokenCount!.Value;
        long output = second.Usage.OutputTokenCount!.Value;
        Assert.AreEqual(prompt, second.Usage.InputTokenCount);
        Assert.IsGreaterThanOrEqualTo(first.Usage!.InputTokenCount!.Value - 1, cached, "the whole first prompt is reused (but the one token fed again)");
        Assert.AreEqual(prompt - cached + output - 1, fed, "only the uncached prompt tokens, then one per generated token but the last");

        long freshBefore = fresh.ProcessedTokens;
        var expected = await fresh.GetResponseAsync(messages, Greedy(), TestContext.CancellationToken);
        Assert.AreEqual(prompt + output - 1, fresh.ProcessedTokens - freshBefore, "without reuse the whole prompt runs");
        Assert.AreEqual(0, expected.Usage!.CachedInputTokenCount);
        Assert.AreEqual(expected.Text, second.Text, "reusing the cache changes nothing in the reply");
    }

    [TestMethod]
    public async Task TenTurnConversationRunsFarFewerTokensWithReuse()
    {
        var timesWith = new List<double>();
        var timesWithout = new List<double>();
        var (textWith, fedWith) = await Converse(maxCached: 4, timesWith);
        var (textWithout, fedWithout) = await Converse(maxCached: 0, timesWithout);

        CollectionAssert.AreEqual(textWithout, textWith, "the replies do not depend on reuse");
        Assert.IsLessThan(fedWithout / 2, fedWith, $"tokens fed: {fedWith} with reuse, {fedWithout} without");
        TestContext.WriteLine($"10 turns: {fedWith} tokens fed with reuse, {fedWithout} without");
        TestContext.WriteLine($"turn 2: {timesWith[1]:F1} ms with reuse, {timesWithout[1]:F1} ms without; " +
            $"turn 10: {timesWith[9]:F1} ms vs {timesWithout[9]:F1} ms; total {timesWith.Sum():F0} vs {timesWithout.Sum():F0} ms");

        async Task<(List<string> Texts, long Fed)> Converse(int maxCached, List<double> times)
        {
            using var client = new OnnxGptChatClient(Model, new OnnxGptChatClientOptions { MaxCachedConversations = maxCached });
            var messages = new List<ChatMessage> { new(ChatRole.System, "You tell stories.") };
            var texts = new List<string>();
            for (int turn = 0; turn < 10; turn++)
            {
                messages.Add(new ChatMessage(ChatRole.User, $"And next? ({turn})"));
                var clock = Stopwatch.StartNew();
                var response = await client.GetResponseAsync(messages, Greedy(12), TestContext.CancellationToken);
                times.Add(clock.Elapsed.TotalMilliseconds);
                texts.Add(response.Text);
                messages.AddMessages(response);
            }

            return (texts, client.ProcessedTokens);
        }
    }

    [TestMethod]
    public async Task SeededSamplingGivesTheSameReplyFromTheCacheAndAfresh()
    {
        using var client = new OnnxGptChatClient(Model);
        using var fresh = new OnnxGptChatClient(Model, new OnnxGptChatClientOptions { MaxCachedConversations = 0 });
        ChatMessage[] messages = [new(ChatRole.User, "Say something surprising about the ocean, the mountains and the stars tonight.")];
        var options = new ChatOptions { Temperature = 0.9f, TopK = 40, Seed = 1234, MaxOutputTokens = 16 };
        var first = await client.GetResponseAsync(messages, options, TestContext.CancellationToken);
        var again = await client.GetResponseAsync(messages, options, TestContext.CancellationToken);
        var afresh = await fresh.GetResponseAsync(messages, options, TestContext.CancellationToken);

        Assert.IsGreaterThan(0, again.Usage!.CachedInputTokenCount!.Value, "the repeated request reuses the cache");
        Assert.AreEqual(first.Text, again.Text);
        Assert.AreEqual(first.Text, afresh.Text);
        var other = await fresh.GetResponseAsync(messages, new ChatOptions { Temperature = 0.9f, TopK = 40, Seed = 99, MaxOutputTokens = 16 }, TestContext.CancellationToken);
        Assert.AreNotEqual(first.Text, other.Text, "another seed draws other tokens");
    }

    [TestMethod]
    public void ChatOptionsMapToGenerationOptions()
    {
        using var client = new OnnxGptChatClient(Model, new OnnxGptChatClientOptions { DefaultGenerationOptions = new GenerationOptions { MaxNewTokens = 7, StopStrings = ["END"] } });
        var defaults = client.MapOptions(null, ["\nUser:"]);
        Assert.AreEqual(7, defaults.MaxNewTokens);
        CollectionAssert.AreEqual(new[] { "END", "\nUser:" }, defaults.StopStrings.ToArray());

        var mapped = client.MapOptions(new ChatOptions
        {
            Temperature = 0.5f, TopP = 0.9f, TopK = 5, MaxOutputTokens = 30, Seed = -1, PresencePenalty = 1,
            StopSequences = ["\nUser:", "###"],
        }, ["\nUser:"]);
        Assert.IsTrue(mapped.DoSample);
        Assert.AreEqual(0.5, mapped.Temperature, 1e-6);
        Assert.AreEqual(0.9, mapped.TopP, 1e-6);
        Assert.AreEqual(5, mapped.TopK);
        Assert.AreEqual(30, mapped.MaxNewTokens);
        Assert.AreEqual(ulong.MaxValue, mapped.Seed, "a negative seed is the same 64 bits, unsigned");
        Assert.AreEqual(1.0, mapped.PresencePenalty, 1e-9, "presence penalty one to one (OpenAI's additive penalty)");
        Assert.AreEqual(1.0, mapped.RepetitionPenalty, "the repetition penalty is not derived from it");
        CollectionAssert.AreEqual(new[] { "END", "\nUser:", "###" }, mapped.StopStrings.ToArray());

        var both = client.MapOptions(new ChatOptions { PresencePenalty = -1.5f, FrequencyPenalty = 0.75f }, []);
        Assert.AreEqual(-1.5, both.PresencePenalty, 1e-6);
        Assert.AreEqual(0.75, both.FrequencyPenalty, 1e-6, "frequency penalty one to one");
        var direct = new ChatOptions
        {
            PresencePenalty = 1,
            AdditionalProperties = new()
            {
                [OnnxGptChatClient.RepetitionPenaltyProperty] = 1.25,
                [OnnxGptChatClient.LogitBiasProperty] = new Dictionary<int, double> { [3] = -100 },
                [OnnxGptChatClient.TopLogProbsProperty] = 4,
                [OnnxGptChatClient.NoRepeatNgramSizeProperty] = 3,
            },
        };
        var extra = client.MapOptions(direct, []);
        Assert.AreEqual(1.25, extra.RepetitionPenalty, 1e-9, "repetition_penalty sets Hugging Face's penalty beside OpenAI's");
        Assert.AreEqual(1.0, extra.PresencePenalty, 1e-9);
        Assert.AreEqual(-100, extra.LogitBias[3]);
        Assert.AreEqual(4, extra.TopLogProbs);
        Assert.AreEqual(3, extra.NoRepeatNgramSize);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => client.MapOptions(new ChatOptions { FrequencyPenalty = 3 }, []));
        Assert.IsTrue(client.MapOptions(new ChatOptions { Temperature = 0 }, []).IsGreedy);

        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => client.MapOptions(new ChatOptions { MaxOutputTokens = -1 }, []));
        StringAssert.Contains(e.Message, "MaxNewTokens");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => client.MapOptions(new ChatOptions { TopP = 0 }, []));
        var bad = new ChatOptions { AdditionalProperties = new() { [OnnxGptChatClient.RepetitionPenaltyProperty] = "strong" } };
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => client.MapOptions(bad, [])).Message, "repetition_penalty");
    }

    [TestMethod]
    public async Task UnsupportedOptionsAreLoggedAndIgnored()
    {
        var logger = new ListLogger();
        using var client = new OnnxGptChatClient(Model, logger: logger);
        var options = Greedy(4);
        options.FrequencyPenalty = 0.5f;
        options.Tools = [AIFunctionFactory.Create(() => 42, "answer")];
        ChatMessage[] messages = [new(ChatRole.User, [new TextContent("Hi"), new DataContent(new byte[] { 1, 2 }, "image/png")])];
        var response = await client.GetResponseAsync(messages, options, TestContext.CancellationToken);

        Assert.IsGreaterThan(0, response.Usage!.OutputTokenCount!.Value);
        var warnings = logger.Entries.Where(e => e.Level == LogLevel.Warning).Select(e => e.Message).ToList();
        foreach (var name in new[] { "Tools", "not text" })
        {
            Assert.IsTrue(warnings.Any(w => w.Contains(name, StringComparison.Ordinal)), $"a warning names {name}: {string.Join(" | ", warnings)}");
        }

        Assert.IsFalse(warnings.Any(w => w.Contains("FrequencyPenalty", StringComparison.Ordinal)), "the frequency penalty is applied, not ignored");
    }

    [TestMethod]
    public async Task CancellationStopsTheReplyAndTheClientKeepsServing()
    {
        using var client = new OnnxGptChatClient(Model);
        ChatMessage[] messages = [new(ChatRole.User, "Count to a thousand.")];
        using (var cancelled = new CancellationTokenSource())
        {
            await cancelled.CancelAsync();
            await Assert.ThrowsAsync<OperationCanceledException>(() => client.GetResponseAsync(messages, Greedy(), cancelled.Token));
        }

        using var cts = new CancellationTokenSource();
        int updates = 0;
        await Assert.ThrowsAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync(messages, Greedy(400), cts.Token))
            {
                if (++updates == 3)
                {
                    await cts.CancelAsync();
                }
            }
        });
        Assert.AreEqual(3, updates, "no update after the cancellation");

        var response = await client.GetResponseAsync(messages, Greedy(5), TestContext.CancellationToken);
        Assert.AreEqual(5, response.Usage!.OutputTokenCount);
    }

    [TestMethod]
    public async Task ConcurrentConversationsOnOneModelReplyAsSequentialOnes()
    {
        const int Conversations = 4, Turns = 3;
        using var sequential = new OnnxGptChatClient(Model, new OnnxGptChatClientOptions { MaxCachedConversations = 0 });
        var expected = new List<string>[Conversations];
        for (int c = 0; c < Conversations; c++)
        {
            expected[c] = await Converse(sequential, c);
        }

        using var shared = new OnnxGptChatClient(Model, new OnnxGptChatClientOptions { MaxCachedConversations = Conversations });
        var results = await Task.WhenAll(Enumerable.Range(0, Conversations).Select(c => Task.Run(() => Converse(shared, c))));
        for (int c = 0; c < Conversations; c++)
        {
            CollectionAssert.AreEqual(expected[c], results[c], $"conversation {c}");
        }

        async Task<List<string>> Converse(OnnxGptChatClient client, int c)
        {
            var messages = new List<ChatMessage>();
            var replies = new List<string>();
            for (int turn = 0; turn < Turns; turn++)
            {
                messages.Add(new ChatMessage(ChatRole.User, $"Conversation {c} about topic {c * 7 + 3}, turn {turn}."));
                var response = await client.GetResponseAsync(messages, Greedy(8), TestContext.CancellationToken);
                replies.Add(response.Text);
                messages.AddMessages(response);
            }

            return replies;
        }
    }

    [TestMethod]
    public async Task PoolKeepsTheMostRecentConversationsUpToItsBound()
    {
        using var client = new OnnxGptChatClient(Model, new OnnxGptChatClientOptions { MaxCachedConversations = 2 });
        var conversations = new List<List<ChatMessage>>();
        for (int c = 0; c < 3; c++)
        {
            var messages = new List<ChatMessage> { new(ChatRole.User, $"Conversation number {c} begins with a rather long first message about {c}.") };
            messages.AddMessages(await client.GetResponseAsync(messages, Greedy(6), TestContext.CancellationToken));
            messages.Add(new ChatMessage(ChatRole.User, "Go on."));
            conversations.Add(messages);
        }

        Assert.AreEqual(2, client.CachedConversations);
        var oldest = await client.GetResponseAsync(conversations[0], Greedy(6), TestContext.CancellationToken);
        Assert.AreEqual(0, oldest.Usage!.CachedInputTokenCount, "the least recently used conversation was dropped");
        var newest = await client.GetResponseAsync(conversations[2], Greedy(6), TestContext.CancellationToken);
        Assert.IsGreaterThan(10, newest.Usage!.CachedInputTokenCount!.Value, "the most recent one was kept");
        Assert.AreEqual(2, client.CachedConversations);
    }

    [TestMethod]
    public async Task PromptThatLeavesNoRoomForAReplyIsRefused()
    {
        using var client = new OnnxGptChatClient(Model);
        ChatMessage[] messages = [new(ChatRole.User, string.Concat(Enumerable.Repeat("many words here ", 300)))];
        var e = await Assert.ThrowsExactlyAsync<OnnxGptException>(() => client.GetResponseAsync(messages, Greedy(), TestContext.CancellationToken));
        StringAssert.Contains(e.Message, "context is 512 tokens");
        var ok = await client.GetResponseAsync([new(ChatRole.User, "Short.")], Greedy(2), TestContext.CancellationToken);
        Assert.AreEqual(2, ok.Usage!.OutputTokenCount);
    }

    [TestMethod]
    public async Task DropOldMessagesKeepsALongConversationWithinTheContext()
    {
        var template = new RecordingTemplate();
        using var client = new OnnxGptChatClient(Model, new OnnxGptChatClientOptions { ChatTemplate = template, DropOldMessages = true });
        var messages = new List<ChatMessage> { new(ChatRole.System, "Stay brief.") };
        for (int turn = 0; turn < 12; turn++)
        {
            messages.Add(new ChatMessage(ChatRole.User, $"Turn {turn}: " + string.Concat(Enumerable.Repeat("a rather long sentence ", 6))));
            var response = await client.GetResponseAsync(messages, Greedy(8), TestContext.CancellationToken);
            Assert.IsLessThanOrEqualTo(512 - 8, response.Usage!.InputTokenCount!.Value, $"turn {turn}");
            messages.AddMessages(response);
        }

        var rendered = template.Last!;
        Assert.AreEqual(ChatRole.System, rendered[0].Role, "system messages are kept");
        StringAssert.StartsWith(rendered[^1].Text, "Turn 11:", "the last message is kept");
        Assert.IsLessThan(messages.Count - 1, rendered.Count, "older messages were dropped");
        Assert.AreEqual(25, messages.Count, "the caller's list is left alone");
    }

    [TestMethod]
    public void GetServiceReturnsTheModelMetadataTemplateAndClient()
    {
        using var client = new OnnxGptChatClient(Model, new OnnxGptChatClientOptions { ModelId = "tiny" });
        IChatClient chat = client;
        Assert.AreSame(Model, chat.GetService<GptModel>());
        Assert.AreSame(client, chat.GetService<OnnxGptChatClient>());
        Assert.AreSame(client.Template, chat.GetService<IChatTemplate>());
        var metadata = chat.GetService<ChatClientMetadata>()!;
        Assert.AreEqual("onnxgpt", metadata.ProviderName);
        Assert.AreEqual("tiny", metadata.DefaultModelId);
        Assert.AreEqual(Model.ModelPath, metadata.ProviderUri!.LocalPath);
        Assert.IsNull(chat.GetService(typeof(GptModel), serviceKey: "other"));
        Assert.IsNull(chat.GetService(typeof(string)));
    }

    [TestMethod]
    public void ModelWithoutTokenizerIsRefused()
    {
        using var tmp = TestPaths.NewTemp();
        using var model = GptModel.Load(TestModels.Export(TestWeights.Random(TestWeights.Small(), seed: 3), tmp));
        var e = Assert.ThrowsExactly<OnnxGptException>(() => new OnnxGptChatClient(model));
        StringAssert.Contains(e.Message, "no tokenizer");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new OnnxGptChatClient(Model, new OnnxGptChatClientOptions { MaxCachedConversations = -1 }));
    }

    /// <summary>The default template, remembering the messages it rendered last.</summary>
    private sealed class RecordingTemplate : IChatTemplate
    {
        public IReadOnlyList<ChatMessage>? Last { get; private set; }

        public IReadOnlyList<string> StopSequences => ChatTemplate.Default.StopSequences;

        public string Render(IReadOnlyList<ChatMessage> messages)
        {
            Last = [.. messages];
            return ChatTemplate.Default.Render(messages);
        }
    }
}

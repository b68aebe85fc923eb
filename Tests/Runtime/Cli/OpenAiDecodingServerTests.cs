using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;
using OnnxGpt.Cli.Serving;
using OnnxGpt.Exporter.Checkpoints;
using OnnxGpt.Exporter.Model;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;
using OpenAI;
using OpenAI.Chat;
using AiChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary>
/// The server's decoding controls over a fused tiny-random-gpt2 (batch engine for single choices): log-probabilities
/// read by the official OpenAI client and checked against the reference forward pass, echo scores equal to
/// <c>onnxgpt eval</c>, n / best_of / beam search, token-array and batched prompts, logit bias and OpenAI's penalties.
/// </summary>
[TestClass]
public sealed class OpenAiDecodingServerTests
{
    private const string ModelId = "tiny";
    private const double LogProbTolerance = 1e-4;

    private static TempFolder? s_tmp;
    private static string? s_folder;
    private static GptWeights? s_weights;
    private static GptModel? s_model;
    private static OnnxGptChatClient? s_served;
    private static OpenAiServer? s_server;
    private static HttpClient? s_http;

    public TestContext TestContext { get; set; } = null!;

    private static string BaseUrl => s_server!.Urls[0];

    private CancellationToken Cancel => TestContext.CancellationToken;

    [ClassInitialize]
    public static async Task Initialize(TestContext context)
    {
        s_tmp = new TempFolder();
        s_weights = HfCheckpoint.Load(TestPaths.TinyRandomGpt2);
        s_folder = ChatModels.ExportTinyGpt2(s_tmp, graph: new GraphOptions { Flavor = GraphFlavor.Fused });
        s_model = GptModel.Load(s_folder);
        s_served = new OnnxGptChatClient(s_model, new OnnxGptChatClientOptions { ModelId = ModelId, BatchSlots = 2, MaxCachedConversations = 0 });
        s_server = await OpenAiServer.StartAsync(s_served, new ServerOptions { Urls = "http://127.0.0.1:0", MaxTokensLimit = 64 }, cancellationToken: context.CancellationToken);
        s_http = new HttpClient { BaseAddress = new Uri(BaseUrl), Timeout = TimeSpan.FromSeconds(60) };
    }

    [ClassCleanup]
    public static async Task Cleanup()
    {
        s_http?.Dispose();
        if (s_server is not null)
        {
            await s_server.DisposeAsync();
        }

        s_served?.Dispose();
        s_model?.Dispose();
        s_tmp?.Dispose();
    }

    private static ChatClient OpenAiChat() =>
        new(ModelId, new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(BaseUrl + "/v1"), NetworkTimeout = TimeSpan.FromSeconds(60) });

    private static int[] Encode(string text) => s_model!.Tokenizer!.Encode(text);

    private static double[] ReferenceLogProbs(IEnumerable<int> sequence) => ReferenceDecoding.LogSoftmax(ReferenceDecoding.NextLogits(s_weights!, [.. sequence]));

    [TestMethod]
    public async Task ChatLogProbsReadByTheOpenAiClientAreTheReferencesLogSoftmax()
    {
        OpenAI.Chat.ChatMessage[] messages = [new UserChatMessage("Say something about rivers.")];
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 6, Temperature = 0, IncludeLogProbabilities = true, TopLogProbabilityCount = 3 };
        ChatCompletion completion = (await OpenAiChat().CompleteChatAsync(messages, options, Cancel)).Value;

        var details = completion.ContentTokenLogProbabilities;
        Assert.AreEqual(completion.Usage.OutputTokenCount, details.Count, "one entry per generated token");
        int[] prompt = s_served!.EncodePrompt(s_served.Template.Render([new AiChatMessage(ChatRole.User, "Say something about rivers.")]));
        var generated = TestModels.ReferenceGreedy(s_weights!, prompt, details.Count);
        for (int i = 0; i < details.Count; i++)
        {
            var reference = ReferenceLogProbs(prompt.Concat(generated.Take(i)));
            CollectionAssert.AreEqual(s_model!.Tokenizer!.GetTokenBytes(generated[i]).ToArray(), BytesOf(details[i].Utf8Bytes), $"token {i}: bytes");
            Assert.AreEqual(reference[generated[i]], details[i].LogProbability, LogProbTolerance, $"token {i}: logprob");
            var top = reference.Select((x, id) => (x, id)).OrderByDescending(t => t.x).Take(3).ToArray();
            Assert.HasCount(3, details[i].TopLogProbabilities);
            for (int k = 0; k < 3; k++)
            {
                CollectionAssert.AreEqual(s_model.Tokenizer.GetTokenBytes(top[k].id).ToArray(), BytesOf(details[i].TopLogProbabilities[k].Utf8Bytes), $"token {i}, top {k}");
                Assert.AreEqual(top[k].x, details[i].TopLogProbabilities[k].LogProbability, LogProbTolerance, $"token {i}, top {k}");
            }
        }

        // Streamed, the same log-probabilities arrive with the chunks.
        var streamed = new List<ChatTokenLogProbabilityDetails>();
        await foreach (var update in OpenAiChat().CompleteChatStreamingAsync(messages, options, Cancel))
        {
            streamed.AddRange(update.ContentTokenLogProbabilities);
        }

        CollectionAssert.AreEqual(details.Select(d => d.LogProbability).ToArray(), streamed.Select(d => d.LogProbability).ToArray());
    }

    [TestMethod]
    public async Task ChatNFromTheOpenAiClientGivesEachRowsSeedAsTheChatClientAlone()
    {
        // The typed options of the official client have no n (it shows one choice per completion), so the request goes
        // through the client's protocol method: the same pipeline, the body as OpenAI documents it.
        const string Body = """
            {"model":"tiny","messages":[{"role":"user","content":"Tell me a story."}],"n":3,"max_tokens":5,"temperature":1,
             "seed":11,"logprobs":true,"top_logprobs":2}
            """;
        var result = await OpenAiChat().CompleteChatAsync(BinaryContent.Create(BinaryData.FromString(Body)), new RequestOptions { CancellationToken = Cancel });
        using var json = JsonDocument.Parse(result.GetRawResponse().Content.ToString());
        var choices = json.RootElement.GetProperty("choices").EnumerateArray().ToList();
        Assert.HasCount(3, choices);
        using var local = new OnnxGptChatClient(s_model!, new OnnxGptChatClientOptions { BatchSlots = 0, MaxCachedConversations = 0 });
        var texts = new HashSet<string>();
        int tokens = 0;
        for (int j = 0; j < 3; j++)
        {
            Assert.AreEqual(j, choices[j].GetProperty("index").GetInt32());
            var alone = await local.GetResponseAsync([new AiChatMessage(ChatRole.User, "Tell me a story.")],
                new ChatOptions { MaxOutputTokens = 5, Temperature = 1, Seed = 11 + j }, Cancel);
            string text = choices[j].GetProperty("message").GetProperty("content").GetString()!;
            Assert.AreEqual(alone.Text, text, $"choice {j} is the conversation alone with seed 11 + {j}");
            var content = choices[j].GetProperty("logprobs").GetProperty("content").EnumerateArray().ToList();
            Assert.AreEqual((int)alone.Usage!.OutputTokenCount!, content.Count, $"choice {j}: one log-probability per token");
            Assert.IsTrue(content.All(t => t.GetProperty("logprob").GetDouble() <= 0 && t.GetProperty("top_logprobs").GetArrayLength() == 2), $"choice {j}");
            tokens += content.Count;
            texts.Add(text);
        }

        Assert.IsGreaterThan(1, texts.Count, "test setup: the rows sample different replies");
        Assert.AreEqual(tokens, json.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        // Streamed: each choice's pieces carry its index and add up to its message, with every token's log-probability.
        using var streamed = await s_http!.PostAsync("/v1/chat/completions",
            new StringContent(Body.Replace("\"n\":3", "\"n\":3,\"stream\":true", StringComparison.Ordinal), Encoding.UTF8, "application/json"), Cancel);
        Assert.AreEqual(HttpStatusCode.OK, streamed.StatusCode);
        var pieces = new StringBuilder[3].Select(_ => new StringBuilder()).ToArray();
        var finishes = new string?[3];
        var counted = new int[3];
        var events = await ReadEventsAsync(streamed);
        Assert.AreEqual("[DONE]", events[^1]);
        foreach (var e in events.SkipLast(1))
        {
            var c = JsonDocument.Parse(e).RootElement.GetProperty("choices")[0];
            int i = c.GetProperty("index").GetInt32();
            if (c.GetProperty("delta").TryGetProperty("content", out var content))
            {
                pieces[i].Append(content.GetString());
            }

            if (c.GetProperty("logprobs").ValueKind == JsonValueKind.Object)
            {
                counted[i] += c.GetProperty("logprobs").GetProperty("content").GetArrayLength();
            }

            if (c.GetProperty("finish_reason").ValueKind == JsonValueKind.String)
            {
                finishes[i] = c.GetProperty("finish_reason").GetString();
            }
        }

        for (int j = 0; j < 3; j++)
        {
            Assert.AreEqual(choices[j].GetProperty("message").GetProperty("content").GetString(), pieces[j].ToString(), $"streamed choice {j}");
            Assert.AreEqual(choices[j].GetProperty("finish_reason").GetString(), finishes[j], $"streamed choice {j}: finish reason");
            Assert.AreEqual(choices[j].GetProperty("logprobs").GetProperty("content").GetArrayLength(), counted[j], $"streamed choice {j}: log-probabilities");
        }
    }

    [TestMethod]
    public async Task EchoedPromptLogProbsEqualOnnxgptEvalsNll()
    {
        const string Text = "Once upon a time there was a river";
        int[] prompt = Encode(Text);
        using var json = await PostJsonAsync("""{"model":"tiny","prompt":"Once upon a time there was a river","max_tokens":3,"temperature":0,"logprobs":2,"echo":true}""");
        var choice = json.RootElement.GetProperty("choices")[0];
        StringAssert.StartsWith(choice.GetProperty("text").GetString()!, Text);
        var logprobs = choice.GetProperty("logprobs");
        var values = logprobs.GetProperty("token_logprobs").EnumerateArray().ToList();
        Assert.HasCount(prompt.Length + 3, values);
        Assert.AreEqual(JsonValueKind.Null, values[0].ValueKind, "the first token has nothing before it");
        Assert.AreEqual(JsonValueKind.Null, logprobs.GetProperty("top_logprobs")[0].ValueKind);
        for (int i = 1; i < prompt.Length; i++)
        {
            Assert.AreEqual(ReferenceLogProbs(prompt.Take(i))[prompt[i]], values[i].GetDouble(), LogProbTolerance, $"prompt token {i}");
            Assert.AreEqual(2, logprobs.GetProperty("top_logprobs")[i].EnumerateObject().Count());
        }

        var offsets = logprobs.GetProperty("text_offset").EnumerateArray().Select(o => o.GetInt32()).ToList();
        var tokens = logprobs.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToList();
        Assert.AreEqual(0, offsets[0]);
        for (int i = 1; i < offsets.Count; i++)
        {
            Assert.AreEqual(offsets[i - 1] + tokens[i - 1].Length, offsets[i], $"text_offset {i}");
        }

        Assert.AreEqual(Text, string.Concat(tokens.Take(prompt.Length)));
        double echoNll = -values.Skip(1).Take(prompt.Length - 1).Average(v => v.GetDouble());
        var (code, stdout, stderr) = ExportCommandTests.Cli("eval", "--model", s_folder!, "--ids", string.Join(",", prompt), "--json");
        Assert.AreEqual(0, code, stderr);
        double evalNll = JsonDocument.Parse(stdout).RootElement.GetProperty("mean_nll").GetDouble();
        Assert.AreEqual(evalNll, echoNll, 1e-5, "echo's scores are eval's NLL on the same tokens");
    }

    [TestMethod]
    public async Task NSamplesAreEachRowsSeedAndBestOfKeepsTheMostLikely()
    {
        const string Prompt = "The cat";
        var chat = new ChatOptions { MaxOutputTokens = 5, Temperature = 1, TopK = 0, Seed = 11 };
        var expected = new List<GenerationResult>();
        for (int r = 0; r < 4; r++)
        {
            using var alone = s_model!.CreateGenerator(s_served!.MapOptions(chat, []) with { Seed = 11 + (ulong)r, TopLogProbs = 0 });
            alone.Append(Encode(Prompt));
            expected.Add(alone.GenerateAll()[0]);
        }

        using (var json = await PostJsonAsync("""{"model":"tiny","prompt":"The cat","max_tokens":5,"temperature":1,"top_k":0,"seed":11,"n":3}"""))
        {
            var choices = json.RootElement.GetProperty("choices").EnumerateArray().ToList();
            Assert.HasCount(3, choices);
            for (int j = 0; j < 3; j++)
            {
                Assert.AreEqual(j, choices[j].GetProperty("index").GetInt32());
                Assert.AreEqual(expected[j].Text, choices[j].GetProperty("text").GetString(), $"choice {j} is the prompt alone with seed 11 + {j}");
            }

            Assert.AreEqual(15, json.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        }

        using (var json = await PostJsonAsync("""{"model":"tiny","prompt":"The cat","max_tokens":5,"temperature":1,"top_k":0,"seed":11,"n":2,"best_of":4}"""))
        {
            var best = expected.Select((r, i) => (r, i)).OrderByDescending(x => x.r.LogProbs!.Average(t => t.LogProb)).ThenBy(x => x.i).Take(2).ToList();
            var choices = json.RootElement.GetProperty("choices").EnumerateArray().ToList();
            Assert.HasCount(2, choices);
            for (int j = 0; j < 2; j++)
            {
                Assert.AreEqual(best[j].r.Text, choices[j].GetProperty("text").GetString(), $"choice {j}: the sample with the {j + 1}. highest log-probability per token");
            }
        }

        // Streamed: each choice's pieces carry its index and add up to its text.
        using var streamed = await PostAsync("""{"model":"tiny","prompt":"The cat","max_tokens":5,"temperature":1,"top_k":0,"seed":11,"n":3,"stream":true}""");
        var texts = new StringBuilder[3].Select(_ => new StringBuilder()).ToArray();
        foreach (var e in (await ReadEventsAsync(streamed)).SkipLast(1))
        {
            var c = JsonDocument.Parse(e).RootElement.GetProperty("choices")[0];
            texts[c.GetProperty("index").GetInt32()].Append(c.GetProperty("text").GetString());
        }

        for (int j = 0; j < 3; j++)
        {
            Assert.AreEqual(expected[j].Text, texts[j].ToString(), $"streamed choice {j}");
        }
    }

    [TestMethod]
    public async Task BeamSearchFollowsVllmsFieldsAndEqualsTheLibrarysBeams()
    {
        using var generator = s_model!.CreateGenerator(new GenerationOptions { NumBeams = 4, NumReturnSequences = 2, MaxNewTokens = 6, LengthPenalty = 0.5, EarlyStopping = BeamEarlyStopping.Never });
        generator.Append(Encode("A river"));
        var expected = generator.GenerateAll();
        using var json = await PostJsonAsync(
            """{"model":"tiny","prompt":"A river","max_tokens":6,"use_beam_search":true,"best_of":4,"n":2,"length_penalty":0.5,"early_stopping":"never","logprobs":0}""");
        var choices = json.RootElement.GetProperty("choices").EnumerateArray().ToList();
        Assert.HasCount(2, choices);
        for (int j = 0; j < 2; j++)
        {
            Assert.AreEqual(expected[j].Text, choices[j].GetProperty("text").GetString(), $"beam {j}");
            Assert.AreEqual(expected[j].Score!.Value, choices[j].GetProperty("score").GetDouble(), 1e-9, $"beam {j}");
            var values = choices[j].GetProperty("logprobs").GetProperty("token_logprobs").EnumerateArray().ToList();
            Assert.HasCount(expected[j].NewTokens, values);
            Assert.AreEqual(ReferenceLogProbs(expected[j].Ids.Take(expected[j].PromptLength))[expected[j].NewIds[0]], values[0].GetDouble(), LogProbTolerance);
        }

        using var stream = await PostAsync("""{"model":"tiny","prompt":"A river","use_beam_search":true,"n":2,"stream":true}""");
        Assert.AreEqual(HttpStatusCode.BadRequest, stream.StatusCode);
        using var one = await PostAsync("""{"model":"tiny","prompt":"A river","use_beam_search":true}""");
        Assert.AreEqual(HttpStatusCode.BadRequest, one.StatusCode, "one beam is not a beam search");
    }

    [TestMethod]
    public async Task TokenArrayAndBatchedPromptsAnswerAsEachAlone()
    {
        int[] a = Encode("Hello"), b = Encode("Goodbye, old friend");
        string single = await CompletionText($$"""{"model":"tiny","prompt":[{{string.Join(",", a)}}],"max_tokens":4,"temperature":0}""");
        Assert.AreEqual(await CompletionText("""{"model":"tiny","prompt":"Hello","max_tokens":4,"temperature":0}"""), single, "token ids as the text's tokens");

        using var batch = await PostJsonAsync($$"""{"model":"tiny","prompt":[[{{string.Join(",", a)}}],[{{string.Join(",", b)}}]],"max_tokens":4,"temperature":0}""");
        using var strings = await PostJsonAsync("""{"model":"tiny","prompt":["Hello","Goodbye, old friend"],"max_tokens":4,"temperature":0}""");
        string second = await CompletionText("""{"model":"tiny","prompt":"Goodbye, old friend","max_tokens":4,"temperature":0}""");
        foreach (var json in new[] { batch, strings })
        {
            var choices = json.RootElement.GetProperty("choices").EnumerateArray().ToList();
            Assert.HasCount(2, choices);
            Assert.AreEqual(single, choices[0].GetProperty("text").GetString());
            Assert.AreEqual(second, choices[1].GetProperty("text").GetString());
            Assert.AreEqual(1, choices[1].GetProperty("index").GetInt32());
        }

        using var bad = await PostAsync("""{"model":"tiny","prompt":[5, 100000],"max_tokens":2}""");
        Assert.AreEqual(HttpStatusCode.BadRequest, bad.StatusCode);
        StringAssert.Contains(await bad.Content.ReadAsStringAsync(Cancel), "outside the vocabulary");
    }

    [TestMethod]
    public async Task LogitBiasAndOpenAisPenaltiesFromTheOpenAiClient()
    {
        OpenAI.Chat.ChatMessage[] messages = [new UserChatMessage("Tell me a story.")];
        int forced = Encode(" river")[0];
        var biased = new ChatCompletionOptions { MaxOutputTokenCount = 4, Temperature = 0, IncludeLogProbabilities = true };
        biased.LogitBiases[forced] = 100;
        var completion = (await OpenAiChat().CompleteChatAsync(messages, biased, Cancel)).Value;
        byte[] forcedBytes = s_model!.Tokenizer!.GetTokenBytes(forced).ToArray();
        Assert.IsTrue(completion.ContentTokenLogProbabilities.All(t => BytesOf(t.Utf8Bytes).SequenceEqual(forcedBytes)), "a bias of 100 picks the token every time");

        // Penalties: the same greedy reply as the in-process chat client with the same ChatOptions (one to one).
        var penalised = new ChatCompletionOptions { MaxOutputTokenCount = 12, Temperature = 0, PresencePenalty = 1.5f, FrequencyPenalty = 1f };
        string served = (await OpenAiChat().CompleteChatAsync(messages, penalised, Cancel)).Value.Content[0].Text;
        using var local = new OnnxGptChatClient(s_model, new OnnxGptChatClientOptions { BatchSlots = 0, MaxCachedConversations = 0 });
        var chatOptions = new ChatOptions { MaxOutputTokens = 12, Temperature = 0, PresencePenalty = 1.5f, FrequencyPenalty = 1f };
        Assert.AreEqual((await local.GetResponseAsync([new AiChatMessage(ChatRole.User, "Tell me a story.")], chatOptions, Cancel)).Text, served);
        var plain = (await OpenAiChat().CompleteChatAsync(messages, new ChatCompletionOptions { MaxOutputTokenCount = 12, Temperature = 0 }, Cancel)).Value.Content[0].Text;
        Assert.AreNotEqual(plain, served, "test setup: the penalties change this reply");
    }

    /// <summary>The client's bytes of a token, whatever type it gives them as.</summary>
    private static byte[] BytesOf(object? bytes) => bytes switch
    {
        ReadOnlyMemory<byte> memory => memory.ToArray(),
        BinaryData data => data.ToArray(),
        byte[] array => array,
        _ => throw new AssertFailedException($"the client gave no bytes ({bytes?.GetType().Name ?? "null"})"),
    };

    private async Task<string> CompletionText(string body)
    {
        using var json = await PostJsonAsync(body);
        return json.RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!;
    }

    private async Task<JsonDocument> PostJsonAsync(string body)
    {
        using var response = await PostAsync(body);
        string text = await response.Content.ReadAsStringAsync(Cancel);
        Assert.AreEqual(HttpStatusCode.OK, response.StatusCode, text);
        return JsonDocument.Parse(text);
    }

    private async Task<HttpResponseMessage> PostAsync(string body) =>
        await s_http!.PostAsync("/v1/completions", new StringContent(body, Encoding.UTF8, "application/json"), Cancel);

    private async Task<List<string>> ReadEventsAsync(HttpResponseMessage response)
    {
        var events = new List<string>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(Cancel));
        while (await reader.ReadLineAsync(Cancel) is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add(line["data: ".Length..]);
            }
        }

        return events;
    }
}

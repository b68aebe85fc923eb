using System.Text.Json;
using Json.Schema;
using Microsoft.Extensions.AI;
using OnnxGpt.Runtime.Batching;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Constraints;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Runtime.Constraints;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Batching;

/// <summary>
/// Constrained requests in the batch engine (a fused model with GPT-2's vocabulary): each request has its own
/// constraint or none, shares the batch with the others, and gets the tokens it gets alone.
/// </summary>
[TestClass]
public sealed class ConstrainedBatchTests
{
    private static TempFolder? s_tmp;
    private static GptModel? s_model;

    public TestContext TestContext { get; set; } = null!;

    /// <summary>A record as M.E.AI would ask for it, bounded so any weights finish it.</summary>
    public sealed record Pet([property: System.ComponentModel.DataAnnotations.MaxLength(8)] string Name, [property: System.ComponentModel.DataAnnotations.Range(0, 30)] int Age);

    [ClassInitialize]
    public static void Initialize(TestContext _)
    {
        s_tmp = new TempFolder();
        s_model = GptModel.Load(ChatModels.ExportGpt2Vocabulary(s_tmp, fused: true));
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        s_model?.Dispose();
        s_tmp?.Dispose();
    }

    [TestMethod]
    public async Task ConstrainedAndFreeRequestsShareTheBatchAndEachGetsItsSoloTokens()
    {
        var model = s_model!;
        Assert.IsTrue(BatchEngine.Supports(model));
        var schema = TestSchemas.All[0].Schema;
        var constraint = OutputConstraint.FromJsonSchema(schema);
        var tokenizer = model.Tokenizer!;
        (int[] Prompt, GenerationOptions Options)[] requests =
        [
            (tokenizer.Encode("Person:"), new GenerationOptions { DoSample = false, MaxNewTokens = 200, Constraint = constraint }),
            (tokenizer.Encode("Once upon a time"), new GenerationOptions { DoSample = false, MaxNewTokens = 30 }),
            (tokenizer.Encode("Another person:"), new GenerationOptions { Seed = 5, Temperature = 1.0, TopK = 0, MaxNewTokens = 200, Constraint = constraint }),
            (tokenizer.Encode("Any JSON:"), new GenerationOptions { Seed = 9, MaxNewTokens = 60, Constraint = OutputConstraint.AnyJson }),
        ];
        var solo = requests.Select(r =>
        {
            using var generator = model.CreateGenerator(r.Options);
            generator.Append(r.Prompt);
            return generator.GenerateAll()[0];
        }).ToArray();

        using var engine = BatchEngine.Start(model, new BatchEngineOptions { Slots = 4, PrefillChunkTokens = 4 });
        var submitted = requests.Select(r => engine.Submit(r.Prompt, r.Options, cancellationToken: TestContext.CancellationToken)).ToArray();
        await Task.WhenAll(submitted.Select(r => r.Completion));
        var validator = JsonSchema.FromText(schema);
        for (int i = 0; i < requests.Length; i++)
        {
            var result = submitted[i].Result!;
            CollectionAssert.AreEqual(solo[i].NewIds.ToArray(), result.NewIds.ToArray(), $"request {i}: the batch changed its tokens");
            Assert.AreEqual(solo[i].ConstraintComplete, result.ConstraintComplete, $"request {i}");
            if (i is 0 or 2)
            {
                Assert.IsTrue(result.ConstraintComplete, $"request {i}: {result.FinishReason} {result.Text}");
                using var document = JsonDocument.Parse(result.Text!);
                Assert.IsTrue(validator.Evaluate(document.RootElement).IsValid, result.Text);
            }
        }

        Assert.IsNull(submitted[1].Result!.ConstraintComplete, "the free request has no constraint");
    }

    [TestMethod]
    public async Task GetResponseAsyncThroughTheBatchingChatClientDeserialises()
    {
        using var client = new OnnxGptChatClient(s_model!);
        Assert.IsNotNull(client.Engine, "a fused model is served by the batch engine");
        var replies = await Task.WhenAll(Enumerable.Range(0, 4).Select(seed =>
            client.GetResponseAsync<Pet>([new ChatMessage(ChatRole.User, "A pet?")], new ChatOptions { Seed = seed, MaxOutputTokens = 150 },
                cancellationToken: TestContext.CancellationToken)));
        foreach (var reply in replies)
        {
            Assert.IsTrue(reply.TryGetResult(out var pet), $"'{reply.Text}' ({reply.FinishReason})");
            Assert.IsTrue(pet!.Age is >= 0 and <= 30);
        }

        var cut = await client.GetResponseAsync<Pet>([new ChatMessage(ChatRole.User, "A pet?")], new ChatOptions { Seed = 1, MaxOutputTokens = 2 },
            cancellationToken: TestContext.CancellationToken);
        Assert.AreEqual(ChatFinishReason.Length, cut.FinishReason);
        Assert.AreEqual(true, cut.Messages[^1].AdditionalProperties?[OnnxGptChatClient.IncompleteProperty]);
    }
}

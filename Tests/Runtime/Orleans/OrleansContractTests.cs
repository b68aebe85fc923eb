using System.Reflection;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using OnnxGpt.Orleans.Client;
using OnnxGpt.Orleans.Conversations;
using OnnxGpt.Orleans.Hosting;
using OnnxGpt.Orleans.Storage;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Tests.Support;
using Orleans.Serialization;
using Orleans.Storage;

namespace OnnxGpt.Tests.Runtime.Orleans;

/// <summary>
/// The pieces of the scale-out that need no cluster: what crosses the wire round-trips (every option of the
/// library's overrides included), conversation ids from a conversation's start are stable, the file storage refuses a
/// stale write, and the slot ledger never gives out more slots than it has.
/// </summary>
[TestClass]
public sealed class OrleansContractTests
{
    private static readonly Serializer Serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();

    [TestMethod]
    public void EveryPropertyOfGenerationOverridesCrossesTheWire()
    {
        var original = new GenerationOverrides();
        var properties = typeof(GenerationOverrides).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite).ToArray();
        foreach (var property in properties)
        {
            original = With(original, property, NonDefault(property.PropertyType));
        }

        var copy = Serializer.Deserialize<GenerationOverrides>(Serializer.SerializeToArray(original));
        foreach (var property in properties)
        {
            object? sent = property.GetValue(original), received = property.GetValue(copy);
            bool same = sent switch
            {
                IEnumerable<string> list => list.SequenceEqual((IEnumerable<string>)received!),
                IReadOnlyDictionary<int, double> map => received is IReadOnlyDictionary<int, double> back && map.OrderBy(p => p.Key).SequenceEqual(back.OrderBy(p => p.Key)),
                _ => Equals(sent, received),
            };
            Assert.IsTrue(same, $"GenerationOverrides.{property.Name} was {sent} and arrived as {received}: add it to GenerationOverridesSurrogate");
        }
    }

    [TestMethod]
    public void TurnsUpdatesAndErrorsRoundTrip()
    {
        var turn = new ConversationTurn
        {
            Messages = [new ConversationMessage("user", "Hi")],
            History = TurnHistory.Full,
            Options = new GenerationOverrides { Seed = 5, StopStrings = ["\n"] },
            TurnId = "t1",
            Instructions = "Be brief.",
        };
        var copy = Serializer.Deserialize<ConversationTurn>(Serializer.SerializeToArray(turn));
        Assert.IsNotNull(copy);
        Assert.AreEqual(turn.Messages[0], copy.Messages[0]);
        Assert.AreEqual((TurnHistory.Full, "t1", "Be brief.", 5UL), (copy.History, copy.TurnId, copy.Instructions, copy.Options.Seed!.Value));

        var update = new ConversationUpdate { Kind = ConversationUpdateKind.Completed, FinishReason = FinishReason.StopString, Usage = new ConversationUsage(9, 4, 7, 2), Silo = "s", Turn = 3, Reply = "x" };
        var back = Serializer.Deserialize<ConversationUpdate>(Serializer.SerializeToArray(update));
        Assert.IsNotNull(back);
        Assert.AreEqual(FinishReason.StopString, back.FinishReason);
        Assert.AreEqual(update, back);

        var error = Serializer.Deserialize<Exception>(Serializer.SerializeToArray<Exception>(new ConversationInterruptedException("broke") { TokensReceived = 4 }));
        Assert.IsInstanceOfType<ConversationInterruptedException>(error);
        Assert.AreEqual(4, ((ConversationInterruptedException)error).TokensReceived);

        // A turn the silo refuses reaches the caller as the library's own error, its message and kind kept.
        var refused = Serializer.Deserialize<Exception>(Serializer.SerializeToArray<Exception>(new OnnxGptException("prompt too long", OnnxGptErrorKind.ModelOutput)));
        Assert.IsInstanceOfType<OnnxGptException>(refused);
        Assert.AreEqual(("prompt too long", OnnxGptErrorKind.ModelOutput), (refused.Message, ((OnnxGptException)refused).Kind));
    }

    [TestMethod]
    public void ConversationIdsComeFromTheConversationsStartOnly()
    {
        ChatMessage[] start = [new(ChatRole.System, "Be brief."), new(ChatRole.User, "Hi"), new(ChatRole.Assistant, "Hello.")];
        string id = ConversationIds.ForChat(start);
        Assert.AreEqual(id, ConversationIds.ForChat([.. start, new(ChatRole.User, "More")]), "later turns of the conversation map to the same grain");
        Assert.AreEqual(id, ConversationIds.ForChat(start[..2]));
        Assert.AreNotEqual(id, ConversationIds.ForChat([start[0], new(ChatRole.User, "Hi!")]), "another first message, another conversation");
        Assert.AreNotEqual(id, ConversationIds.ForChat(start[1..]), "the system message is part of the start");
        Assert.AreNotEqual(id, ConversationIds.ForChat(start, instructions: "Be long."));
        StringAssert.StartsWith(id, "chat-");
        Assert.HasCount(5 + 32, id);
        Assert.AreEqual(ConversationIds.ForText("ROMEO:\nO"), ConversationIds.ForText("ROMEO:\nO, she doth teach"), "a text conversation is known by its first line");
        Assert.AreNotEqual(ConversationIds.ForText("ROMEO:\n"), ConversationIds.ForText("JULIET:\n"));
    }

    [TestMethod]
    public async Task TheFileStorageKeepsStatesAcrossInstancesAndRefusesAStaleWrite()
    {
        using var tmp = new TempFolder();
        var storageSerializer = new ServiceCollection().AddSerializer().AddSingleton<IGrainStorageSerializer, OrleansGrainStorageSerializer>()
            .BuildServiceProvider().GetRequiredService<IGrainStorageSerializer>();
        var id = GrainId.Create("conversation", "a/b:c d");
        var first = new FileGrainStorage(tmp.Path, storageSerializer);
        var state = new GrainState<ConversationTurn>(new ConversationTurn { Text = "one" });
        await first.WriteStateAsync("conversation", id, state);

        var second = new FileGrainStorage(tmp.Path, storageSerializer);   // another silo process on the same directory
        var read = new GrainState<ConversationTurn>();
        await second.ReadStateAsync("conversation", id, read);
        Assert.IsTrue(read.RecordExists);
        Assert.AreEqual("one", read.State?.Text);

        read.State = new ConversationTurn { Text = "two" };
        await second.WriteStateAsync("conversation", id, read);
        state.State = new ConversationTurn { Text = "stale" };
        var stale = await Assert.ThrowsExactlyAsync<InconsistentStateException>(() => first.WriteStateAsync("conversation", id, state));
        StringAssert.Contains(stale.Message, "written by someone else");

        await second.ClearStateAsync("conversation", id, read);
        var gone = new GrainState<ConversationTurn>();
        await first.ReadStateAsync("conversation", id, gone);
        Assert.IsFalse(gone.RecordExists);
        Assert.IsEmpty(Directory.GetFiles(tmp.Path, "*.tmp", SearchOption.AllDirectories), "no temporary file is left behind");
    }

    [TestMethod]
    public void TheSlotLedgerGivesOutNoMoreSlotsThanItHas()
    {
        var ledger = new SlotLedger(2);
        GrainId a = GrainId.Create("c", "a"), b = GrainId.Create("c", "b"), c = GrainId.Create("c", "c");
        Assert.IsTrue(ledger.TryReserve(a));
        Assert.IsTrue(ledger.TryReserve(a), "a reservation is idempotent");
        Assert.IsTrue(ledger.TryReserve(b));
        Assert.IsFalse(ledger.TryReserve(c), "both slots are reserved");
        Assert.IsFalse(ledger.Claim(c), "an activation without a reservation gets no slot when none is free");
        Assert.IsTrue(ledger.Claim(a), "an activation claims its reservation");
        ledger.Release(b);
        Assert.AreEqual(1, ledger.Free);
        Assert.IsTrue(ledger.Claim(c), "a released slot goes to the next");
        Assert.AreEqual(0, ledger.Free);
    }

    private static object NonDefault(Type type)
    {
        Type t = Nullable.GetUnderlyingType(type) ?? type;
        if (t == typeof(int))
        {
            return 7;
        }

        if (t == typeof(double))
        {
            return 0.25;
        }

        if (t == typeof(ulong))
        {
            return 99UL;
        }

        if (t == typeof(bool))
        {
            return true;
        }

        if (t == typeof(IReadOnlyList<string>))
        {
            return new[] { "stop" };
        }

        if (t == typeof(IReadOnlyDictionary<int, double>))
        {
            return new Dictionary<int, double> { [3] = -1.5, [9] = 2 };
        }

        if (t.IsEnum)
        {
            return Enum.GetValues(t).GetValue(Enum.GetValues(t).Length - 1)!;   // not the default (first) member
        }

        throw new AssertFailedException($"GenerationOverrides has a property of type {t}: teach this test (and the surrogate) a value for it.");
    }

    private static GenerationOverrides With(GenerationOverrides overrides, PropertyInfo property, object value)
    {
        var copy = overrides with { };
        property.SetValue(copy, value);   // init-only setters are ordinary setters to reflection
        return copy;
    }
}

using Microsoft.Extensions.AI;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Tokenization;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Chat;

/// <summary>Messages a user reads: characters by code point, positions in the user's own text, hints that fit the request.</summary>
[TestClass]
public sealed class UserFacingMessageTests
{
    [TestMethod]
    public void AnEmojiIsNamedByItsCodePointNotItsSurrogates()
    {
        var tokenizer = new CharacterTokenizer(["a", "b", "c"]);
        var e = Assert.ThrowsExactly<OnnxGptException>(() => tokenizer.Encode("ab🙂"));
        StringAssert.Contains(e.Message, "'🙂' (U+1F642) at position 2");
        Assert.IsFalse(e.Message.Contains("U+D83D", StringComparison.Ordinal), e.Message);
    }

    [TestMethod]
    public async Task ACharacterTheVocabularyLacksIsReportedInTheUsersMessage()
    {
        using var tmp = new TempFolder();
        using var model = GptModel.Load(ChatModels.ExportTinyGpt2(tmp));
        using var client = new OnnxGptChatClient(model);
        string text = "Hi \u0001 there";   // a control byte the tiny vocabulary has no token for
        try
        {
            model.Tokenizer!.Encode(text);
            Assert.Inconclusive("the vocabulary covers the control byte; nothing to report.");
        }
        catch (OnnxGptException)
        {
        }

        var e = Assert.ThrowsExactly<OnnxGptException>(() => client.GetStreamingResponseAsync(
            [new ChatMessage(ChatRole.User, "Hello"), new ChatMessage(ChatRole.User, text)]));
        StringAssert.StartsWith(e.Message, "message 1 (user): ");
        StringAssert.Contains(e.Message, "at position 3,");
        await Task.CompletedTask;
    }

    [TestMethod]
    public async Task ATooLongCompletionPromptIsToldToShortenNotToDropMessages()
    {
        using var tmp = new TempFolder();
        using var model = GptModel.Load(ChatModels.ExportTinyGpt2(tmp));
        using var client = new OnnxGptChatClient(model);
        string prompt = string.Concat(Enumerable.Repeat("a b ", model.Config.ContextLength));
        var e = await Assert.ThrowsExactlyAsync<OnnxGptException>(async () =>
        {
            await foreach (var _ in client.CompleteStreamingAsync(prompt))
            {
            }
        });
        StringAssert.Contains(e.Message, "shorten the prompt");
        Assert.IsFalse(e.Message.Contains("messages", StringComparison.Ordinal), e.Message);

        var chat = await Assert.ThrowsExactlyAsync<OnnxGptException>(async () =>
        {
            await foreach (var _ in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, prompt)]))
            {
            }
        });
        StringAssert.Contains(chat.Message, "drop earlier messages or shorten them");
    }
}

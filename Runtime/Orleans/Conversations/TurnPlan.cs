using Microsoft.Extensions.AI;
using OnnxGpt.Orleans.Hosting;
using OnnxGpt.Runtime.Generation;

namespace OnnxGpt.Orleans.Conversations;

/// <summary>
/// One turn worked out against the saved conversation: the point of the history it continues from (after the last
/// turn; before it, when the last turn is sent again; or nothing, for a new or replaced conversation), the whole
/// prompt, the options over the model's defaults, the random state to sample on from, and the state to save after it.
/// </summary>
internal sealed class TurnPlan
{
    private readonly ConversationTurn _turn;
    private readonly List<ConversationMessage> _messages;   // chat: the conversation's messages before the reply
    private readonly int _turnsBefore;
    private readonly int _messagesBefore;
    private readonly int _tokensBefore;
    private readonly ulong[]? _randomBefore;

    private TurnPlan(ConversationTurn turn, List<ConversationMessage> messages, Point from, int[] prompt, GenerationOptions options)
    {
        _turn = turn;
        _messages = messages;
        _turnsBefore = from.Turns;
        _messagesBefore = from.Messages;
        _tokensBefore = from.Tokens;
        _randomBefore = from.Random;
        Prompt = prompt;
        Options = options;
        ResumeFrom = options.Seed is null ? from.Random : null;   // a seed starts its stream afresh
    }

    /// <summary>The whole prompt of the turn.</summary>
    public int[] Prompt { get; }

    /// <summary>The model's defaults with the turn's options (and, on a chat turn, the template's stop strings).</summary>
    public GenerationOptions Options { get; }

    /// <summary>The random state the sampler goes on from, or null (a seed's stream, or a random one).</summary>
    public ulong[]? ResumeFrom { get; }

    /// <exception cref="OnnxGptException">A text turn appended to a chat conversation or the reverse, or text the tokenizer cannot encode.</exception>
    /// <exception cref="ArgumentException">The turn has neither messages nor text, or an option is out of range.</exception>
    public static TurnPlan For(ConversationState saved, ConversationTurn turn, ConversationEngineHost host)
    {
        ArgumentNullException.ThrowIfNull(turn.Options);
        if (!turn.IsText && turn.Messages.Count == 0)
        {
            throw new ArgumentException("a conversation turn needs messages (a chat turn) or text (a text turn); this one has neither.", nameof(turn));
        }

        bool append = turn.History == TurnHistory.Append;
        if (append && saved.Turns > 0 && saved.IsText != turn.IsText)
        {
            throw new OnnxGptException(
                $"this conversation holds {(saved.IsText ? "plain text" : "chat messages")}, so a {(turn.IsText ? "text" : "chat")} turn cannot be appended to it; " +
                $"send a {(saved.IsText ? "text" : "chat")} turn, or the whole conversation (History Full), which replaces it.");
        }

        var defaults = turn.IsText ? host.Defaults : host.Defaults with { StopStrings = [.. host.Defaults.StopStrings, .. host.Template.StopSequences] };
        var options = turn.Options.ApplyTo(defaults);
        options.Validate();

        // The points of the saved history a turn can continue from, latest first.
        var after = new Point(saved.Turns, saved.Messages.Count, saved.Tokens.Length, saved.RandomState);
        var beforeLast = saved.Turns > 0 ? new Point(saved.Turns - 1, saved.MessagesBeforeLast, saved.TokensBeforeLast, saved.RandomStateBeforeLast) : Point.Empty;
        bool sameKind = saved.Turns > 0 && saved.IsText == turn.IsText;
        if (turn.IsText)
        {
            Point from;
            int[] prompt;
            if (append)
            {
                from = turn.TurnId is { } id && id == saved.LastTurnId && saved.Turns > 0 ? beforeLast : after;
                int[] text = host.Tokenizer.Encode(turn.Text!);
                prompt = from.Tokens == 0 ? WithBos(host, text) : [.. saved.Tokens.AsSpan(0, from.Tokens), .. text];
            }
            else
            {
                prompt = WithBos(host, host.Tokenizer.Encode(turn.Text!));
                from = sameKind && StartsWith(prompt, saved.Tokens, after.Tokens) ? after
                    : sameKind && StartsWith(prompt, saved.Tokens, beforeLast.Tokens) && beforeLast.Turns > 0 ? beforeLast
                    : Point.Empty;
            }

            return new TurnPlan(turn, [], from, prompt, options);
        }

        List<ConversationMessage> messages;
        Point start;
        if (append)
        {
            start = turn.TurnId is { } id && id == saved.LastTurnId && saved.Turns > 0 ? beforeLast : after;
            messages = [.. saved.Messages.Take(start.Messages), .. turn.Messages];
        }
        else
        {
            messages = [.. turn.Messages];
            start = sameKind && StartsWith(messages, saved.Messages, after.Messages) ? after
                : sameKind && beforeLast.Turns > 0 && StartsWith(messages, saved.Messages, beforeLast.Messages) ? beforeLast
                : Point.Empty;
        }

        var rendered = new List<ChatMessage>(messages.Count + 1);
        if (turn.Instructions is { Length: > 0 } instructions)
        {
            rendered.Add(new ChatMessage(ChatRole.System, instructions));
        }

        rendered.AddRange(messages.Select(m => m.ToChatMessage()));
        int[] chatPrompt = WithBos(host, host.Tokenizer.Encode(host.Template.Render(rendered)));
        return new TurnPlan(turn, messages, start with { Tokens = 0 }, chatPrompt, options);
    }

    /// <summary>Whether the engine's row for the conversation (its saved tokens) can serve this prompt: the prompt starts with most of it.</summary>
    public bool ContinuesTokens(int[] saved) => saved.Length > 0 && 2 * ((ReadOnlySpan<int>)Prompt).CommonPrefixLength(saved) >= saved.Length;

    /// <summary>The state to save once the reply is complete.</summary>
    /// <param name="sequence">The engine's sequence: the prompt and the generated tokens.</param>
    /// <param name="reply">The reply's text as the caller got it.</param>
    /// <param name="randomState">The sampler's random state after the reply.</param>
    public ConversationState Commit(IReadOnlyList<int> sequence, string reply, IReadOnlyList<ulong>? randomState) => new()
    {
        Messages = _turn.IsText ? [] : [.. _messages, new ConversationMessage(ChatRole.Assistant.Value, reply)],
        Tokens = [.. sequence],
        RandomState = randomState is null ? null : [.. randomState],
        Turns = _turnsBefore + 1,
        IsText = _turn.IsText,
        LastTurnId = _turn.TurnId,
        MessagesBeforeLast = _messagesBefore,
        TokensBeforeLast = _tokensBefore,
        RandomStateBeforeLast = _randomBefore,
    };

    private static int[] WithBos(ConversationEngineHost host, int[] tokens) =>
        host.Tokenizer.AddsBosToken && host.Tokenizer.BosTokenId is { } bos ? [bos, .. tokens] : tokens;

    private static bool StartsWith(int[] prompt, int[] saved, int length) =>
        length <= saved.Length && length <= prompt.Length && prompt.AsSpan(0, length).SequenceEqual(saved.AsSpan(0, length));

    private static bool StartsWith(List<ConversationMessage> messages, List<ConversationMessage> saved, int count) =>
        count <= saved.Count && count <= messages.Count && messages.Take(count).SequenceEqual(saved.Take(count));

    private readonly record struct Point(int Turns, int Messages, int Tokens, ulong[]? Random)
    {
        public static Point Empty { get; } = new(0, 0, 0, null);
    }
}

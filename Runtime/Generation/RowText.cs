using System.Text;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Runtime.Generation;

/// <summary>
/// One row's generated text: each token's bytes through a UTF-8-safe <see cref="StreamingDecoder"/>, then the stop
/// strings. Keeps the piece the last token completed and the whole text since the last append.
/// </summary>
internal sealed class RowText
{
    private readonly StreamingDecoder _decoder;
    private IReadOnlyList<string> _stopStrings;
    private readonly StringBuilder _text;
    private StopStringMatcher _matcher;

    /// <param name="tokenizer">Gives each token's bytes.</param>
    /// <param name="stopStrings">Text that ends the row.</param>
    /// <param name="expectedTokens">Tokens the text will likely hold, to size it once (about four characters a token).</param>
    public RowText(ITextTokenizer tokenizer, IReadOnlyList<string> stopStrings, int expectedTokens)
    {
        _decoder = new StreamingDecoder(tokenizer);
        _stopStrings = stopStrings;
        _matcher = new StopStringMatcher(stopStrings);
        _text = new StringBuilder(expectedTokens * 4);
    }

    /// <summary>The text the last token completed, plus anything released when the row finished.</summary>
    public string Piece { get; private set; } = string.Empty;

    public string Text => _text.ToString();

    /// <summary>The stop strings from the next <see cref="Reset"/> on (the generator's options changed).</summary>
    public void UseStopStrings(IReadOnlyList<string> stopStrings) => _stopStrings = stopStrings;

    /// <summary>Starts afresh (a new append) after <paramref name="previousToken"/> (−1: none): no text, nothing held back.</summary>
    public void Reset(int previousToken = -1)
    {
        _decoder.Reset(previousToken);
        _matcher = new StopStringMatcher(_stopStrings);
        _text.Clear();
        Piece = string.Empty;
    }

    /// <summary>
    /// Adds a generated token that stopped the row for <paramref name="reason"/> (or None). A stop token's own text is
    /// left out; a stop string completed by this token turns the reason into <see cref="FinishReason.StopString"/>.
    /// When the row finishes, whatever was held back is released into the piece.
    /// </summary>
    public FinishReason Add(int token, FinishReason reason)
    {
        string piece;
        if (reason is FinishReason.EndOfSequence or FinishReason.StopToken)
        {
            piece = Flush();
        }
        else
        {
            piece = _matcher.Push(_decoder.Append(token));
            if (_matcher.IsStopped)
            {
                reason = FinishReason.StopString;
            }
            else if (reason != FinishReason.None)
            {
                piece += Flush();
            }
        }

        Piece = piece;
        _text.Append(piece);
        return reason;
    }

    /// <summary>The row finished for a reason outside the text (the context is full): release what is held back.</summary>
    public void Finish()
    {
        string rest = Flush();
        Piece += rest;
        _text.Append(rest);
    }

    /// <summary>
    /// After a rewind: the text rebuilt from the generated tokens that remain (stop tokens already left out), with the
    /// row's reason, which a stop string among them turns into <see cref="FinishReason.StopString"/>.
    /// </summary>
    public FinishReason Replay(IEnumerable<int> tokens, FinishReason reason)
    {
        Reset();
        foreach (int token in tokens)
        {
            _text.Append(_matcher.Push(_decoder.Append(token)));
        }

        if (_matcher.IsStopped)
        {
            reason = FinishReason.StopString;
        }
        else if (reason != FinishReason.None)
        {
            _text.Append(Flush());
        }

        Piece = string.Empty;
        return reason;
    }

    private string Flush() => _matcher.Push(_decoder.Flush()) + _matcher.Flush();
}

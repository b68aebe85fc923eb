namespace OnnxGpt.Runtime.Chat;

/// <summary>
/// Trims a reply streamed piece by piece: drops leading whitespace, and holds trailing whitespace back until more
/// text follows (what is still held when the reply ends is dropped): what the chat client does to its replies, for a
/// host that streams replies it generates itself (an OpenAI server's several choices). One per reply.
/// </summary>
public sealed class ReplyTrimmer
{
    private bool _started;
    private string _held = string.Empty;

    /// <summary>The text to emit now for <paramref name="piece"/> (possibly empty).</summary>
    public string Push(string piece)
    {
        if (!_started)
        {
            piece = piece.TrimStart();
            if (piece.Length == 0)
            {
                return string.Empty;
            }

            _started = true;
        }

        int end = piece.Length;
        while (end > 0 && char.IsWhiteSpace(piece[end - 1]))
        {
            end--;
        }

        if (end == 0)
        {
            _held += piece;
            return string.Empty;
        }

        string text = _held.Length == 0 && end == piece.Length ? piece : string.Concat(_held, piece.AsSpan(0, end));
        _held = piece[end..];
        return text;
    }
}

using System.Text;
using System.Text.Json.Nodes;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Cli.Serving;

/// <summary>
/// Log-probabilities in OpenAI's two response shapes, from the raw model distribution (as OpenAI returns them): chat's
/// <c>{content: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}</c> and the legacy completions'
/// <c>{tokens, token_logprobs, top_logprobs, text_offset}</c>. A token's text is its bytes read as UTF-8 (a byte-level
/// piece that ends inside a character reads as U+FFFD; its bytes say what it is).
/// </summary>
internal sealed class LogProbsJson(ITextTokenizer tokenizer)
{
    /// <summary>Chat: one entry per token.</summary>
    public JsonObject Chat(IEnumerable<TokenLogProbs> tokens)
    {
        var content = new JsonArray();
        foreach (var t in tokens)
        {
            var top = new JsonArray();
            foreach (var alternative in t.Top)
            {
                top.Add(Entry(alternative.TokenId, alternative.LogProb));
            }

            var entry = Entry(t.TokenId, t.LogProb);
            entry["top_logprobs"] = top;
            content.Add(entry);
        }

        return new JsonObject { ["content"] = content, ["refusal"] = null };
    }

    /// <summary>
    /// Legacy completions: the tokens (id with its record; null for a first prompt token, which has nothing before
    /// it), their text offsets in the choice's text from <paramref name="offset"/> on; returns the offset after them.
    /// </summary>
    public JsonObject Legacy(IEnumerable<(int Id, TokenLogProbs? LogProbs)> tokens, ref int offset)
    {
        JsonArray texts = [], logprobs = [], tops = [], offsets = [];
        foreach (var (id, lp) in tokens)
        {
            string text = Text(id);
            texts.Add(text);
            logprobs.Add(lp is null ? null : JsonValue.Create(lp.LogProb));
            if (lp is null)
            {
                tops.Add(null);
            }
            else
            {
                var top = new JsonObject();
                foreach (var alternative in lp.Top)
                {
                    string key = Text(alternative.TokenId);
                    if (!top.ContainsKey(key))
                    {
                        top[key] = alternative.LogProb;   // two tokens of the same text: the more likely one
                    }
                }

                tops.Add(top);
            }

            offsets.Add(offset);
            offset += text.Length;
        }

        return new JsonObject { ["tokens"] = texts, ["token_logprobs"] = logprobs, ["top_logprobs"] = tops, ["text_offset"] = offsets };
    }

    private JsonObject Entry(int id, double logprob)
    {
        var bytes = new JsonArray();
        foreach (byte b in tokenizer.GetTokenBytes(id))
        {
            bytes.Add((int)b);
        }

        return new JsonObject { ["token"] = Text(id), ["logprob"] = logprob, ["bytes"] = bytes };
    }

    private string Text(int id) => Encoding.UTF8.GetString(tokenizer.GetTokenBytes(id));
}

using System.Runtime.CompilerServices;
using System.Text;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Runtime.Constraints;

/// <summary>
/// A tokenizer's vocabulary as the constraint engine needs it, built once per tokenizer (and cached): every
/// ordinary token's bytes in a trie laid out in depth-first order (so one forward scan visits it, skipping whole
/// subtrees), and the characters the vocabulary can write one token at a time. Special tokens
/// (<c>&lt;|endoftext|&gt;</c>) are not in the trie: they never write constrained text.
/// </summary>
internal sealed class TokenVocabulary
{
    private static readonly ConditionalWeakTable<ITextTokenizer, TokenVocabulary> Cache = new();

    private readonly int[] _offsets;
    private readonly byte[] _bytes;

    private TokenVocabulary(ITextTokenizer tokenizer)
    {
        Size = tokenizer.VocabularySize;
        var tokens = new List<(int Id, byte[] Bytes)>();
        var singleBytes = new bool[256];
        var wholeChars = new List<(int, int)>();
        for (int id = 0; id < Size; id++)
        {
            if (tokenizer.IsSpecialToken(id))
            {
                continue;
            }

            byte[] bytes;
            try
            {
                bytes = tokenizer.GetTokenBytes(id).ToArray();
            }
            catch (ArgumentOutOfRangeException)
            {
                continue;   // an id without a token (a gap in the vocabulary)
            }

            if (bytes.Length == 0)
            {
                continue;
            }

            tokens.Add((id, bytes));
            if (bytes.Length == 1)
            {
                singleBytes[bytes[0]] = true;
            }

            if (Rune.DecodeFromUtf8(bytes, out var rune, out int used) == System.Buffers.OperationStatus.Done && used == bytes.Length)
            {
                wholeChars.Add((rune.Value, rune.Value));
            }
        }

        TokenCount = tokens.Count;
        _offsets = new int[Size + 1];
        foreach (var (id, bytes) in tokens)
        {
            _offsets[id + 1] = bytes.Length;
        }

        for (int id = 0; id < Size; id++)
        {
            _offsets[id + 1] += _offsets[id];
        }

        _bytes = new byte[_offsets[Size]];
        foreach (var (id, bytes) in tokens)
        {
            bytes.CopyTo(_bytes, _offsets[id]);
        }

        Kind = tokenizer.Kind;
        Producible = ComputeProducible(singleBytes, wholeChars);
        BuildTrie(tokens);
    }

    /// <summary>Ids run from 0 to <see cref="Size"/> − 1 (the tokenizer's vocabulary size).</summary>
    public int Size { get; }

    /// <summary>Ordinary tokens in the trie.</summary>
    public int TokenCount { get; }

    /// <summary>The tokenizer's kind, for messages.</summary>
    public string Kind { get; }

    /// <summary>
    /// The characters the vocabulary can write with single tokens: a token that is exactly the character, or
    /// single-byte tokens for each of its UTF-8 bytes. A grammar is restricted to these, so that whatever it has
    /// begun it can finish with this vocabulary (exact for character and byte-complete vocabularies).
    /// </summary>
    public CodePointSet Producible { get; }

    /// <summary>Per trie node (depth-first order): the byte on the edge into it.</summary>
    public byte[] NodeByte { get; private set; } = [];

    /// <summary>Per node: its depth (1 for the first byte of a token).</summary>
    public int[] NodeDepth { get; private set; } = [];

    /// <summary>Per node: the index just past its subtree.</summary>
    public int[] SubtreeEnd { get; private set; } = [];

    /// <summary>Per node: where its tokens start in <see cref="NodeTokens"/> (one more entry than nodes).</summary>
    public int[] NodeTokenStart { get; private set; } = [];

    /// <summary>The ids of the tokens whose bytes end at each node.</summary>
    public int[] NodeTokens { get; private set; } = [];

    /// <summary>The longest token, in bytes.</summary>
    public int MaxDepth { get; private set; }

    /// <summary>The bytes of ordinary token <paramref name="id"/>; empty for a special token or an id without one.</summary>
    public ReadOnlySpan<byte> TokenBytes(int id) => _bytes.AsSpan(_offsets[id], _offsets[id + 1] - _offsets[id]);

    public static TokenVocabulary For(ITextTokenizer tokenizer) => Cache.GetValue(tokenizer, t => new TokenVocabulary(t));

    private static CodePointSet ComputeProducible(bool[] singleBytes, List<(int, int)> wholeChars)
    {
        if (Array.TrueForAll(singleBytes, b => b))
        {
            return CodePointSet.All;
        }

        var ranges = new List<(int, int)>(wholeChars);
        Span<byte> utf8 = stackalloc byte[4];
        int start = -1;
        for (int cp = 0; cp <= CodePointSet.MaxCodePoint + 1; cp++)
        {
            bool ok = false;
            if (cp <= CodePointSet.MaxCodePoint && Rune.IsValid(cp))
            {
                int n = new Rune(cp).EncodeToUtf8(utf8);
                ok = true;
                for (int i = 0; i < n && ok; i++)
                {
                    ok = singleBytes[utf8[i]];
                }
            }
            else if (cp is >= 0xD800 and <= 0xDFFF)
            {
                continue;   // surrogates: neither end nor extend a run
            }

            if (ok && start < 0)
            {
                start = cp;
            }
            else if (!ok && start >= 0)
            {
                ranges.Add((start, cp - 1));
                start = -1;
            }
        }

        return CodePointSet.FromRanges(ranges);
    }

    private void BuildTrie(List<(int Id, byte[] Bytes)> tokens)
    {
        tokens.Sort((a, b) =>
        {
            int c = a.Bytes.AsSpan().SequenceCompareTo(b.Bytes);
            return c != 0 ? c : a.Id.CompareTo(b.Id);
        });

        var nodeByte = new List<byte>();
        var nodeDepth = new List<int>();
        var subtreeEnd = new List<int>();
        var tokenStart = new List<int>();
        var nodeTokens = new List<int>();
        var path = new List<int>();   // node index at each depth - 1
        byte[] previous = [];
        foreach (var (id, bytes) in tokens)
        {
            int common = 0;
            while (common < previous.Length && common < bytes.Length && previous[common] == bytes[common] && common < path.Count)
            {
                common++;
            }

            // Close the nodes below the common prefix: their subtrees end here.
            while (path.Count > common)
            {
                subtreeEnd[path[^1]] = nodeByte.Count;
                path.RemoveAt(path.Count - 1);
            }

            for (int d = common; d < bytes.Length; d++)
            {
                path.Add(nodeByte.Count);
                nodeByte.Add(bytes[d]);
                nodeDepth.Add(d + 1);
                subtreeEnd.Add(-1);
                tokenStart.Add(nodeTokens.Count);
            }

            // Tokens are sorted, so this token's node is the last one opened (or the same node as a duplicate's).
            nodeTokens.Add(id);
            MaxDepth = Math.Max(MaxDepth, bytes.Length);
            previous = bytes;
        }

        while (path.Count > 0)
        {
            subtreeEnd[path[^1]] = nodeByte.Count;
            path.RemoveAt(path.Count - 1);
        }

        tokenStart.Add(nodeTokens.Count);
        NodeByte = [.. nodeByte];
        NodeDepth = [.. nodeDepth];
        SubtreeEnd = [.. subtreeEnd];
        NodeTokenStart = [.. tokenStart];
        NodeTokens = [.. nodeTokens];
    }
}

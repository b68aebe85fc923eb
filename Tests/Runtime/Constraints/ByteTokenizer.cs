using System.Text;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Tests.Runtime.Constraints;

/// <summary>A tokenizer over a given list of byte strings (token i is entry i), for small vocabularies in tests.</summary>
internal sealed class ByteTokenizer(IReadOnlyList<byte[]> tokens, IReadOnlySet<int>? special = null, string kind = "test") : ITextTokenizer
{
    public string Kind => kind;

    public int VocabularySize => tokens.Count;

    public static ByteTokenizer FromStrings(IEnumerable<string> texts, string kind = "test") =>
        new([.. texts.Select(t => Encoding.UTF8.GetBytes(t))], null, kind);

    public int[] Encode(string text) => throw new NotSupportedException("test tokenizer: decode only");

    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>();
        foreach (var id in ids)
        {
            bytes.AddRange(tokens[id]);
        }

        return Encoding.UTF8.GetString([.. bytes]);
    }

    public ReadOnlySpan<byte> GetTokenBytes(int id) => (uint)id < (uint)tokens.Count ? tokens[id] : throw new ArgumentOutOfRangeException(nameof(id));

    public bool IsSpecialToken(int id) => special?.Contains(id) == true;
}

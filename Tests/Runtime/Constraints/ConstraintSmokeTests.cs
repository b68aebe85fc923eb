using System.Text;
using OnnxGpt.Runtime.Constraints;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Tokenization;

namespace OnnxGpt.Tests.Runtime.Constraints;

[TestClass]
public sealed class ConstraintSmokeTests
{
    [TestMethod]
    public void AcceptsAJsonDocumentByteByByte()
    {
        var tokenizer = ByteTokenizer.FromStrings(Enumerable.Range(0, 256).Select(b => ((char)b).ToString()).Where(s => s[0] < 128));
        var constraint = OutputConstraint.FromJsonSchema(TestSchemas.All[0].Schema);
        Console.WriteLine(constraint.Grammar);
        var state = constraint.Start(tokenizer);
        foreach (var c in """{"name": "bob", "age": 42}""")
        {
            Assert.IsTrue(state.TryAdvance(c - (c >= 128 ? 0 : 0) - 0), $"refused '{c}'");
        }

        Assert.IsTrue(state.IsComplete);
        Assert.IsFalse(state.CanContinue);
    }
}

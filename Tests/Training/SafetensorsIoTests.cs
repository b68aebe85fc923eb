using System.Text;
using OnnxGpt.Model;
using OnnxGpt.Training;

namespace OnnxGpt.Tests.Training;

[TestClass]
public sealed class SafetensorsIoTests
{
    [TestMethod]
    public void RoundTripsTensorsAndAlignsTheHeader()
    {
        var path = Path.GetTempFileName();
        try
        {
            var a = new Tensor([2, 3], [1, 2, 3, 4, 5, 6]);
            var b = new Tensor([1], [-0.5f]);
            SafetensorsIo.Write(path, [KeyValuePair.Create("a", a), KeyValuePair.Create("b.weight", b)], new Dictionary<string, string> { ["format"] = "pt" });
            var bytes = File.ReadAllBytes(path);
            Assert.AreEqual(0UL, BitConverter.ToUInt64(bytes, 0) % 8);
            var back = SafetensorsIo.Read(path);
            CollectionAssert.AreEqual(a.Data, back["a"].Data);
            CollectionAssert.AreEqual(a.Shape, back["a"].Shape);
            CollectionAssert.AreEqual(b.Data, back["b.weight"].Data);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void OffsetsBeyondTheFileAreAnErrorNamingTheTensor()
    {
        var path = Path.GetTempFileName();
        try
        {
            var header = Encoding.UTF8.GetBytes("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""");
            using (var s = File.Create(path))
            {
                s.Write(BitConverter.GetBytes((ulong)header.Length));
                s.Write(header);
                s.Write(new byte[8]); // only half the data
            }

            var e = Assert.ThrowsExactly<OnnxGptException>(() => SafetensorsIo.Read(path));
            StringAssert.Contains(e.Message, "'w'");
        }
        finally
        {
            File.Delete(path);
        }
    }
}

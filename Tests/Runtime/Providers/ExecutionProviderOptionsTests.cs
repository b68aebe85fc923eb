using OnnxGpt.Runtime.Providers;

namespace OnnxGpt.Tests.Runtime.Providers;

[TestClass]
public sealed class ExecutionProviderOptionsTests
{
    [TestMethod]
    public void KnownNamesParseToTypedOptions()
    {
        Assert.AreEqual(new CpuProvider(), ExecutionProviderOptions.Parse("cpu"));
        Assert.AreEqual(new CudaProvider(0), ExecutionProviderOptions.Parse("cuda"));
        Assert.AreEqual(new CudaProvider(1), ExecutionProviderOptions.Parse("CUDA:1"));
        Assert.AreEqual(new TensorRtProvider(2), ExecutionProviderOptions.Parse("tensorrt:2"));
        Assert.AreEqual(new CoreMlProvider(), ExecutionProviderOptions.Parse("coreml"));
        Assert.AreEqual(new DirectMlProvider(0), ExecutionProviderOptions.Parse(" DirectML "));
        CollectionAssert.AreEqual(
            new ExecutionProviderOptions[] { new TensorRtProvider(0), new CudaProvider(0), new CpuProvider() },
            ExecutionProviderOptions.ParseList("tensorrt, cuda,cpu").ToArray());
    }

    [TestMethod]
    [DataRow("rocm", "is unknown; expected one of: cpu, cuda, tensorrt, coreml, directml")]
    [DataRow("", "is unknown")]
    [DataRow("cuda:x", "device id after ':' must be a non-negative integer, found 'x'")]
    [DataRow("cuda:-1", "non-negative integer")]
    [DataRow("cpu:1", "cpu takes no device id")]
    public void BadNamesAreErrorsListingTheKnownOnes(string text, string expected)
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => ExecutionProviderOptions.Parse(text));
        StringAssert.Contains(e.Message, expected);
    }

    [TestMethod]
    public void EmptyListIsAnError()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => ExecutionProviderOptions.ParseList(" , "));
        StringAssert.Contains(e.Message, "is empty");
    }

    [TestMethod]
    public void OrtNamesMatchOnnxRuntime()
    {
        CollectionAssert.AreEqual(
            new[] { "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider", "CoreMLExecutionProvider", "DmlExecutionProvider" },
            ExecutionProviderOptions.KnownNames.Select(n => ExecutionProviderOptions.Parse(n).OrtName).ToArray());
    }
}

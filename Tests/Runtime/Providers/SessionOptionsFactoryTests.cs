using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using OnnxGpt.Contracts;
using OnnxGpt.Runtime.Providers;

namespace OnnxGpt.Tests.Runtime.Providers;

[TestClass]
public sealed class SessionOptionsFactoryTests
{
    private const string Cuda = "CUDAExecutionProvider";

    private static bool CudaAvailable => SessionOptionsFactory.AvailableProviders().Contains(Cuda);

    [TestMethod]
    public void CpuGivesCpuOptionsWithThreadsAndOptimisationLevel()
    {
        var logger = new ListLogger();
        using var prepared = SessionOptionsFactory.Create(
            new SessionSettings { Providers = [new CpuProvider(IntraOpThreads: 2, InterOpThreads: 1)], OptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_BASIC },
            logger);
        CollectionAssert.AreEqual(new ExecutionProviderOptions[] { new CpuProvider(2, 1) }, prepared.Providers.ToArray());
        Assert.AreEqual(2, prepared.Options.IntraOpNumThreads);
        Assert.AreEqual(1, prepared.Options.InterOpNumThreads);
        Assert.AreEqual(GraphOptimizationLevel.ORT_ENABLE_BASIC, prepared.Options.GraphOptimizationLevel);
        Assert.IsEmpty(logger.Entries);
    }

    [TestMethod]
    public void OnnxRuntimeWritesOnlyErrorsUnlessWarningsAreAskedFor()
    {
        using var quiet = SessionOptionsFactory.Create(new SessionSettings(), new ListLogger());
        Assert.AreEqual(OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR, quiet.Options.LogSeverityLevel);
        using var verbose = SessionOptionsFactory.Create(new SessionSettings { OnnxRuntimeLogLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING }, new ListLogger());
        Assert.AreEqual(OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING, verbose.Options.LogSeverityLevel);
    }

    [TestMethod]
    public void ProfilingIsOffUnlessAPrefixIsGiven()
    {
        using var plain = SessionOptionsFactory.Create(new SessionSettings(), new ListLogger());
        Assert.IsFalse(plain.Options.EnableProfiling);
        using var profiled = SessionOptionsFactory.Create(new SessionSettings { ProfileOutputPrefix = "out/run" }, new ListLogger());
        Assert.IsTrue(profiled.Options.EnableProfiling);
        Assert.AreEqual("out/run", profiled.Options.ProfileOutputPathPrefix);
    }

    [TestMethod]
    public void MissingCudaIsAnErrorListingTheAvailableProviders()
    {
        if (CudaAvailable)
        {
            Assert.Inconclusive("This ONNX Runtime build has CUDA; the error path needs one without.");
        }

        var e = Assert.ThrowsExactly<OnnxGptException>(() =>
            SessionOptionsFactory.Create(new SessionSettings { Providers = [new CudaProvider()] }, new ListLogger()));
        StringAssert.Contains(e.Message, "'cuda:0'");
        StringAssert.Contains(e.Message, "Available providers: CPUExecutionProvider");
        StringAssert.Contains(e.Message, "Microsoft.ML.OnnxRuntime.Gpu");
        StringAssert.Contains(e.Message, "allow CPU fallback");
    }

    [TestMethod]
    public void MissingCudaWithFallbackWarnsAndGivesCpuOptions()
    {
        if (CudaAvailable)
        {
            Assert.Inconclusive("This ONNX Runtime build has CUDA; the fallback path needs one without.");
        }

        var logger = new ListLogger();
        using var prepared = SessionOptionsFactory.Create(
            new SessionSettings { Providers = [new CudaProvider(), new CpuProvider()], AllowCpuFallback = true }, logger);
        CollectionAssert.AreEqual(new ExecutionProviderOptions[] { new CpuProvider() }, prepared.Providers.ToArray());
        var warning = logger.Entries.Single();
        Assert.AreEqual(LogLevel.Warning, warning.Level);
        StringAssert.Contains(warning.Message, "cuda:0");
        StringAssert.Contains(warning.Message, "CPUExecutionProvider");
    }

    [TestMethod]
    public void ProviderThatFailsToStartIsAnErrorOrAWarning()
    {
        // A build that lists CUDA but cannot start it (no driver): simulated by the registration step.
        string[] available = [Cuda, "CPUExecutionProvider"];
        static void Fail(SessionOptions options, ExecutionProviderOptions provider) =>
            throw CreateOrtException("libcudart.so.12: cannot open shared object file");

        var e = Assert.ThrowsExactly<OnnxGptException>(() =>
            SessionOptionsFactory.Create(new SessionSettings { Providers = [new CudaProvider(1)] }, new ListLogger(), available, Fail));
        StringAssert.Contains(e.Message, "failed to start");
        StringAssert.Contains(e.Message, "libcudart");
        Assert.IsInstanceOfType<OnnxRuntimeException>(e.InnerException);

        var logger = new ListLogger();
        using var prepared = SessionOptionsFactory.Create(
            new SessionSettings { Providers = [new CudaProvider(1)], AllowCpuFallback = true }, logger, available, Fail);
        Assert.IsInstanceOfType<CpuProvider>(prepared.Providers.Single());
        StringAssert.Contains(logger.Entries.Single().Message, "failed to start");
    }

    [TestMethod]
    public void ProvidersAreRegisteredInPreferenceOrderWithCpuLast()
    {
        var registered = new List<ExecutionProviderOptions>();
        using var prepared = SessionOptionsFactory.Create(
            new SessionSettings { Providers = [new TensorRtProvider(), new CudaProvider()] },
            new ListLogger(),
            ["TensorrtExecutionProvider", Cuda, "CPUExecutionProvider"],
            (_, provider) => registered.Add(provider));
        CollectionAssert.AreEqual(new ExecutionProviderOptions[] { new TensorRtProvider(), new CudaProvider() }, registered);
        CollectionAssert.AreEqual(new ExecutionProviderOptions[] { new TensorRtProvider(), new CudaProvider(), new CpuProvider() }, prepared.Providers.ToArray());
    }

    [TestMethod]
    public void BadProviderListsAreRejected()
    {
        var logger = new ListLogger();
        var cpuFirst = Assert.ThrowsExactly<ArgumentException>(() =>
            SessionOptionsFactory.Create(new SessionSettings { Providers = [new CpuProvider(), new CudaProvider()] }, logger));
        StringAssert.Contains(cpuFirst.Message, "must come last");

        var twice = Assert.ThrowsExactly<ArgumentException>(() =>
            SessionOptionsFactory.Create(new SessionSettings { Providers = [new CudaProvider(0), new CudaProvider(1)] }, logger));
        StringAssert.Contains(twice.Message, "listed twice");

        var empty = Assert.ThrowsExactly<ArgumentException>(() => SessionOptionsFactory.Create(new SessionSettings { Providers = [] }, logger));
        StringAssert.Contains(empty.Message, "is empty");

        var device = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            SessionOptionsFactory.Create(new SessionSettings { Providers = [new CudaProvider(-1)] }, logger));
        StringAssert.Contains(device.Message, "device id must be >= 0");

        var threads = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            SessionOptionsFactory.Create(new SessionSettings { Providers = [new CpuProvider(IntraOpThreads: -2)] }, logger));
        StringAssert.Contains(threads.Message, "intra-op thread count must be >= 0");
    }

    [TestMethod]
    [TestCategory("Gpu")]
    public void CudaIsRegisteredWhereAvailable()
    {
        if (!CudaAvailable)
        {
            Assert.Inconclusive($"This ONNX Runtime build has no CUDA (available: {string.Join(", ", SessionOptionsFactory.AvailableProviders())}).");
        }

        var logger = new ListLogger();
        using var prepared = SessionOptionsFactory.Create(new SessionSettings { Providers = [new CudaProvider()], AllowCpuFallback = true }, logger);
        if (prepared.Providers[0] is not CudaProvider)
        {
            Assert.Inconclusive($"CUDA is in the build but did not start here: {string.Join(" | ", logger.Entries.Select(e => e.Message))}");
        }

        CollectionAssert.AreEqual(new ExecutionProviderOptions[] { new CudaProvider(), new CpuProvider() }, prepared.Providers.ToArray());
    }

    private static OnnxRuntimeException CreateOrtException(string message)
    {
        // OnnxRuntimeException has no public constructor; build one as ONNX Runtime would (error code + message).
        var constructor = typeof(OnnxRuntimeException).GetConstructors(System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)
            .First(c => c.GetParameters() is [{ ParameterType.IsEnum: true }, { ParameterType: var t }] && t == typeof(string));
        return (OnnxRuntimeException)constructor.Invoke([Enum.ToObject(constructor.GetParameters()[0].ParameterType, 1), message]);
    }
}

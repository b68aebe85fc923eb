using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Runtime.Providers;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>
/// The KV cache comes from the session's allocator for the provider's device (host memory on CPU, tested here through
/// the same code path; device memory on CUDA, where a GPU exists), and outlives nothing it depends on.
/// </summary>
[TestClass]
public sealed class DeviceCacheTests
{
    private static readonly GenerationOptions Greedy = new() { DoSample = false, MaxNewTokens = 16 };

    [TestMethod]
    [DataRow(GraphFlavor.Portable, 2)]
    [DataRow(GraphFlavor.Fused, 1)]
    public void CacheBuffersComeFromTheSessionAndGoBackToIt(GraphFlavor flavor, int buffersPerTensor)
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: 32), seed: 131);
        using var tmp = TestPaths.NewTemp();
        var model = GptModel.Load(TestModels.Export(weights, tmp, options: new ExportOptions { Graph = new GraphOptions { Flavor = flavor } }));
        Assert.AreEqual("cpu", model.CacheDevice);
        var generator = model.CreateGenerator(Greedy);
        generator.Append([1, 2, 3]);
        Assert.AreEqual("cpu", generator.Cache!.Device);
        Assert.AreEqual(generator.Cache.TensorCount * buffersPerTensor, model.LiveCacheBuffers, "every cache buffer is allocated through the model's session");
        generator.GenerateAll();

        // The model goes first: its session (and the allocator the cache came from) stays until the cache is freed.
        model.Dispose();
        Assert.AreEqual(generator.Cache.TensorCount * buffersPerTensor, model.LiveCacheBuffers);
        Assert.ThrowsExactly<ObjectDisposedException>(generator.GenerateNextToken);
        generator.Dispose();
        Assert.AreEqual(0, model.LiveCacheBuffers);
    }

    [TestMethod]
    [TestCategory("Gpu")]
    public void GreedyDecodingWithTheCacheOnCudaEqualsCpu()
    {
        if (!SessionOptionsFactory.AvailableProviders().Contains(new CudaProvider().OrtName))
        {
            Assert.Inconclusive($"This ONNX Runtime build has no CUDA (available: {string.Join(", ", SessionOptionsFactory.AvailableProviders())}); the cache in device memory is tested where a GPU exists.");
        }

        var weights = TestWeights.Random(TestWeights.Small(heads: 2, width: 32) with { ContextLength = 64 }, seed: 132);
        using var tmp = TestPaths.NewTemp();
        foreach (var flavor in new[] { GraphFlavor.Fused, GraphFlavor.Portable })
        {
            string folder = TestModels.Export(weights, tmp, flavor.ToString(), new ExportOptions { Graph = new GraphOptions { Flavor = flavor } });
            using var cpu = GptModel.Load(folder);
            GptModel cuda;
            try
            {
                cuda = GptModel.Load(folder, new SessionSettings { Providers = [new CudaProvider(), new CpuProvider()] });
            }
            catch (OnnxGptException e)
            {
                Assert.Inconclusive($"CUDA is in the build but did not start here: {e.Message}");
                return;
            }

            using (cuda)
            {
                Assert.AreEqual("cuda:0", cuda.CacheDevice);
                int[][] prompts = [[5, 17, 3, 52, 9], [8, 41]];
                using var onCpu = cpu.CreateGenerator(Greedy);
                using var onCuda = cuda.CreateGenerator(Greedy);
                onCpu.AppendBatch(prompts);
                onCuda.AppendBatch(prompts);
                var expected = onCpu.GenerateAll();
                var actual = onCuda.GenerateAll();
                Assert.AreEqual("cuda:0", onCuda.Cache!.Device);
                Assert.AreEqual(cuda.Config.ContextLength, onCuda.Cache.Capacity, "device memory is sized for the whole context at once");
                for (int b = 0; b < prompts.Length; b++)
                {
                    CollectionAssert.AreEqual(expected[b].Ids.ToArray(), actual[b].Ids.ToArray(), $"{flavor}, row {b}: CUDA's greedy tokens differ from the CPU's");
                }

                // Rewinding a device cache: in place it only sets lengths; concatenating starts again from nothing.
                onCpu.RewindTo(7);
                onCuda.RewindTo(7);
                var again = onCuda.GenerateAll();
                var againCpu = onCpu.GenerateAll();
                for (int b = 0; b < prompts.Length; b++)
                {
                    CollectionAssert.AreEqual(againCpu[b].Ids.ToArray(), again[b].Ids.ToArray(), $"{flavor}, row {b} after a rewind");
                }
            }
        }
    }
}

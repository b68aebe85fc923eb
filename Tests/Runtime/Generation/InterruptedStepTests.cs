using System.Runtime.InteropServices;
using OnnxGpt.Exporter;
using OnnxGpt.Exporter.Onnx;
using OnnxGpt.Runtime.Generation;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Generation;

/// <summary>
/// <see cref="DecoderStep.Interrupt"/>: a stopped run moves no sequence on, and the same feed run again gives the
/// logits of a step never stopped, whatever the stopped run left in the cache beyond each row's cached length.
/// </summary>
[TestClass]
public sealed class InterruptedStepTests
{
    private static TestModels.OwnedModel? s_owned;

    private static GptModel Model => s_owned!.Model;

    [ClassInitialize]
    public static void Initialize(TestContext _)
    {
        s_owned = TestModels.LoadSmallFused(seed: 103);
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        s_owned?.Dispose();
    }

    [TestMethod]
    public void InterruptedRunMovesNothingAndTheSameFeedThenGivesTheUninterruptedLogits()
    {
        int[][] prompts = [[5, 17, 3, 52, 9], [8, 41, 2], [30, 31]];
        var stopped = NewRows(prompts);
        var plain = NewRows(prompts);
        using var a = DecoderStep.Create(Model, stopped, 64, useCache: true);
        using var b = DecoderStep.Create(Model, plain, 64, useCache: true);

        // The prompts (several tokens per row), interrupted once, then every row decoding one token, interrupted once.
        int[][] feeds = [[5, 3, 2], [1, 1, 1], [1, 1, 1]];
        for (int s = 0; s < feeds.Length; s++)
        {
            if (s < 2)
            {
                int[] cachedBefore = [.. stopped.Select(q => q!.Cached)];
                a.Interrupt();
                var e = Assert.ThrowsExactly<StepInterruptedException>(() => a.Run([.. feeds[s]], null));
                StringAssert.Contains(e.Message, "interrupted");
                CollectionAssert.AreEqual(cachedBefore, stopped.Select(q => q!.Cached).ToArray(), $"step {s}: an interrupted run moved a row on");
                Assert.ThrowsExactly<StepInterruptedException>(() => a.Run([.. feeds[s]], null), "runs fail until Resume");
                Scribble(a.Cache!, stopped);   // as a run stopped part-way may have left it
                a.Resume();
            }

            a.Run([.. feeds[s]], null);
            b.Run([.. feeds[s]], null);
            for (int r = 0; r < prompts.Length; r++)
            {
                Assert.AreEqual(plain[r]!.Cached, stopped[r]!.Cached, $"step {s}, row {r}");
                CollectionAssert.AreEqual(b.Logits(r).ToArray(), a.Logits(r).ToArray(), $"step {s}, row {r}: logits differ from the step never interrupted");
                int next = 1 + (s * 7 + r * 13) % 60;
                stopped[r]!.Append([next]);
                plain[r]!.Append([next]);
            }
        }
    }

    private static Sequence?[] NewRows(int[][] prompts)
    {
        var rows = new Sequence?[prompts.Length];
        for (int r = 0; r < prompts.Length; r++)
        {
            rows[r] = new Sequence(new GenerationOptions { DoSample = false }, -1, null);
            rows[r]!.Append(prompts[r]);
            rows[r]!.Begin(0, full: false);
        }

        return rows;
    }

    /// <summary>Writes large values into every cache position at or beyond each row's cached length.</summary>
    private static void Scribble(KvCache cache, Sequence?[] rows)
    {
        for (int i = 0; i < cache.TensorCount; i++)
        {
            var read = cache.GetTensor(i);
            var tensor = MemoryMarshal.CreateSpan(ref MemoryMarshal.GetReference(read), read.Length);
            int perRow = tensor.Length / rows.Length, perHead = cache.Capacity * cache.HeadSize;
            for (int r = 0; r < rows.Length; r++)
            {
                for (int h = 0; h < perRow / perHead; h++)
                {
                    tensor.Slice(r * perRow + h * perHead + rows[r]!.Cached * cache.HeadSize, (cache.Capacity - rows[r]!.Cached) * cache.HeadSize).Fill(1e4f);
                }
            }
        }
    }
}

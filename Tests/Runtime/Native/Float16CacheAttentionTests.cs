using System.Runtime.Intrinsics;
using System.Runtime.InteropServices;
using OnnxGpt.Runtime.Native;

namespace OnnxGpt.Tests.Runtime.Native;

/// <summary>
/// The float16-cache attention kernel on its own: the float16 conversions against .NET's <see cref="Half"/>, and the
/// attention of every (row, head) pair against a double-precision reference that reads the same float16 keys and values.
/// </summary>
[TestClass]
public sealed unsafe class Float16CacheAttentionTests
{
    [TestMethod]
    public void EveryFiniteFloat16ReadsBackAsItsValue()
    {
        var bits = new ushort[16];
        var read = new float[16];
        int checkedCount = 0;
        for (int start = 0; start < 65536; start += 16)
        {
            for (int i = 0; i < 16; i++)
            {
                bits[i] = (ushort)(start + i);
            }

            fixed (ushort* p = bits)
            fixed (float* r = read)
            {
                Float16CacheAttention.Load16(p).Store(r);
            }

            for (int i = 0; i < 16; i++)
            {
                var half = BitConverter.UInt16BitsToHalf(bits[i]);
                if (!Half.IsFinite(half))
                {
                    continue;   // the cache never holds these (the writer saturates)
                }

                Assert.AreEqual(BitConverter.SingleToInt32Bits((float)half), BitConverter.SingleToInt32Bits(read[i]),
                    $"float16 0x{bits[i]:X4} ({half}) read as {read[i]}");
                checkedCount++;
            }
        }

        Assert.AreEqual(63488, checkedCount, "every finite float16, signed zeros and subnormals included");
    }

    [TestMethod]
    public void WritingRoundsAsHalfDoesAndSaturatesAtTheLargestFiniteValue()
    {
        var random = new Random(5);
        var values = new List<float>
        {
            0f, -0f, 1f, -1f, 65504f, 65519f, 65520f, 1e6f, float.PositiveInfinity, float.NegativeInfinity, float.NaN,
            6.1035156e-5f, 6.0975552e-5f, 5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f, 1e-9f, -3.0e-6f,
            1f + MathF.Pow(2, -11), 1f + 3 * MathF.Pow(2, -11), 1f + MathF.Pow(2, -11) + MathF.Pow(2, -20),   // ties and just above
        };
        while (values.Count % 16 != 0 || values.Count < 4096)
        {
            // Every binade from float16's subnormals to beyond its range, both signs.
            values.Add((float)((random.NextDouble() * 2 - 1) * Math.Pow(2, random.Next(-30, 20))));
        }

        var floats = values.ToArray();
        var halves = new ushort[floats.Length];
        fixed (float* f = floats)
        fixed (ushort* h = halves)
        {
            Float16CacheAttention.Store(f, h, floats.Length);
        }

        for (int i = 0; i < floats.Length; i++)
        {
            var exact = (Half)floats[i];
            ushort expected = Half.IsFinite(exact) ? BitConverter.HalfToUInt16Bits(exact)
                : (ushort)(BitConverter.SingleToInt32Bits(floats[i]) < 0 ? 0xFBFF : 0x7BFF);   // ±65504, the sign bit kept (NaN's too)
            Assert.AreEqual(expected, halves[i], $"{floats[i]:R}: expected 0x{expected:X4}, wrote 0x{halves[i]:X4}");
        }
    }

    [TestMethod]
    [DataRow(64)]
    [DataRow(32)]
    [DataRow(16)]
    public void DecodingRowsOfDifferentPastsMatchTheReference(int headSize) =>
        Check(headSize, heads: 3, tokens: 1, capacity: 48, pasts: [0, 7, 40], counts: [1, 1, 1], firstPrompt: false);

    [TestMethod]
    [DataRow(64)]
    [DataRow(16)]
    public void ARightPaddedFirstPromptMatchesTheReferenceAndZeroesItsPadding(int headSize) =>
        Check(headSize, heads: 2, tokens: 11, capacity: 16, pasts: [0, 0], counts: [11, 6], firstPrompt: true);

    [TestMethod]
    [DataRow(64)]
    [DataRow(32)]
    public void SeveralTokensAfterAPastMatchTheReference(int headSize) =>
        Check(headSize, heads: 2, tokens: 6, capacity: 64, pasts: [37], counts: [6], firstPrompt: false);

    private static void Check(int headSize, int heads, int tokens, int capacity, int[] pasts, int[] counts, bool firstPrompt)
    {
        int rows = pasts.Length, width = heads * headSize, stride = 3 * width;
        var random = new Random(headSize * 31 + tokens);
        float Next() => (float)(random.NextDouble() * 4 - 2);
        var qkv = new float[rows * tokens * stride];
        for (int i = 0; i < qkv.Length; i++)
        {
            qkv[i] = Next();
        }

        var key = new ushort[rows * heads * capacity * headSize];
        var value = new ushort[key.Length];
        for (int i = 0; i < key.Length; i++)
        {
            key[i] = BitConverter.HalfToUInt16Bits((Half)Next());
            value[i] = BitConverter.HalfToUInt16Bits((Half)Next());
        }

        var keyBefore = (ushort[])key.Clone();
        var output = new float[rows * tokens * width];
        output.AsSpan().Fill(float.NaN);
        fixed (float* q = qkv, o = output)
        fixed (ushort* k = key, v = value)
        fixed (int* p = pasts, c = counts)
        {
            var step = new Float16CacheAttention.Step
            {
                Qkv = q, Key = k, Value = v, Output = o, Past = p, Count = c,
                Tokens = tokens, Heads = heads, Capacity = capacity, HeadSize = headSize, Scale = 1f / MathF.Sqrt(headSize),
            };
            for (int b = 0; b < rows; b++)
            {
                for (int h = 0; h < heads; h++)
                {
                    Float16CacheAttention.Pair(&step, b, h);
                }
            }
        }

        for (int b = 0; b < rows; b++)
        {
            for (int h = 0; h < heads; h++)
            {
                long slice = ((long)b * heads + h) * capacity * headSize;
                double K(int j, int x) => (double)BitConverter.UInt16BitsToHalf(key[slice + (long)j * headSize + x]);
                double V(int j, int x) => (double)BitConverter.UInt16BitsToHalf(value[slice + (long)j * headSize + x]);
                for (int i = 0; i < counts[b]; i++)
                {
                    int at = pasts[b] + i;
                    for (int x = 0; x < headSize; x++)
                    {
                        float fresh = qkv[(b * tokens + i) * stride + width + h * headSize + x];
                        Assert.AreEqual((double)(Half)fresh, K(at, x), $"row {b} head {h}: the new key of token {i} is in the cache at {at}");
                    }
                }

                for (int j = pasts[b] + counts[b]; j < capacity; j++)
                {
                    Assert.AreEqual(keyBefore[slice + (long)j * headSize], key[slice + (long)j * headSize], $"row {b} head {h}: position {j} beyond the row is untouched");
                }

                for (int i = 0; i < tokens; i++)
                {
                    int outAt = (b * tokens + i) * width + h * headSize;
                    if (i >= counts[b])
                    {
                        Assert.IsTrue(output.AsSpan(outAt, headSize).IndexOfAnyExcept(0f) < 0, $"row {b}: padding query {i} gives zeros");
                        continue;
                    }

                    int position = pasts[b] + i;
                    var scores = new double[position + 1];
                    for (int j = 0; j <= position; j++)
                    {
                        double dot = 0;
                        for (int x = 0; x < headSize; x++)
                        {
                            dot += qkv[(b * tokens + i) * stride + h * headSize + x] * K(j, x);
                        }

                        scores[j] = dot / Math.Sqrt(headSize);
                    }

                    double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
                    for (int x = 0; x < headSize; x++)
                    {
                        double expected = 0;
                        for (int j = 0; j <= position; j++)
                        {
                            expected += Math.Exp(scores[j] - max) / sum * V(j, x);
                        }

                        Assert.AreEqual(expected, output[outAt + x], 2e-5 + 2e-5 * Math.Abs(expected),
                            $"row {b} head {h} query {i} (position {position}) element {x}");
                    }
                }
            }
        }
    }
}

/// <summary>The operator as ONNX Runtime runs it, in a one-node model: tensors that do not fit are refused by name; unbound presents get a copy.</summary>
[TestClass]
public sealed class Float16CacheOperatorTests
{
    private const int Heads = 2, HeadSize = 16, Capacity = 8;

    private static byte[] OneNodeModel(int pastHeads)
    {
        var g = new OnnxGpt.Exporter.Onnx.OnnxGraphBuilder("attention");
        var f32 = OnnxGpt.Exporter.Onnx.Proto.TensorProto.Types.DataType.Float;
        var f16 = OnnxGpt.Exporter.Onnx.Proto.TensorProto.Types.DataType.Float16;
        var i32 = OnnxGpt.Exporter.Onnx.Proto.TensorProto.Types.DataType.Int32;
        g.Input("qkv", f32, 1, "T", 3 * Heads * HeadSize);
        g.Input("past_key", f16, 1, pastHeads, Capacity, HeadSize);
        g.Input("past_value", f16, 1, pastHeads, Capacity, HeadSize);
        g.Input("seqlens_k", i32, 1);
        g.Input("total_sequence_length", i32);
        var outs = g.Node(OnnxGpt.Contracts.OnnxGptOperators.Float16CacheAttention, ["qkv", "past_key", "past_value", "seqlens_k", "total_sequence_length"], 3, null,
            OnnxGpt.Contracts.OnnxGptOperators.Domain, OnnxGpt.Exporter.Onnx.Attr.Int("num_heads", Heads));
        g.Output("output", outs[0], f32, 1, "T", Heads * HeadSize);
        g.Output("present_key", outs[1], f16, 1, pastHeads, Capacity, HeadSize);
        g.Output("present_value", outs[2], f16, 1, pastHeads, Capacity, HeadSize);
        var model = new OnnxGpt.Exporter.Onnx.Proto.ModelProto { IrVersion = 10, Graph = g.Graph };
        model.OpsetImport.Add(new OnnxGpt.Exporter.Onnx.Proto.OperatorSetIdProto { Domain = "", Version = 21 });
        model.OpsetImport.Add(new OnnxGpt.Exporter.Onnx.Proto.OperatorSetIdProto { Domain = OnnxGpt.Contracts.OnnxGptOperators.Domain, Version = 1 });
        return Google.Protobuf.MessageExtensions.ToByteArray(model);
    }

    private static Microsoft.ML.OnnxRuntime.InferenceSession Session(int pastHeads)
    {
        var options = new Microsoft.ML.OnnxRuntime.SessionOptions();
        OnnxGpt.Runtime.Providers.SessionOptionsFactory.AddOnnxGptOperators(options);
        return new Microsoft.ML.OnnxRuntime.InferenceSession(OneNodeModel(pastHeads), options);
    }

    private static Microsoft.ML.OnnxRuntime.NamedOnnxValue[] Inputs(int pastHeads, int past, float[] qkv)
    {
        var cache = new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<Microsoft.ML.OnnxRuntime.Float16>([1, pastHeads, Capacity, HeadSize]);
        for (int i = 0; i < cache.Length; i++)
        {
            cache.SetValue(i, (Microsoft.ML.OnnxRuntime.Float16)(float)(i % 7 * 0.25));
        }

        return
        [
            Microsoft.ML.OnnxRuntime.NamedOnnxValue.CreateFromTensor("qkv", new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>(qkv, [1, 1, 3 * Heads * HeadSize])),
            Microsoft.ML.OnnxRuntime.NamedOnnxValue.CreateFromTensor("past_key", cache),
            Microsoft.ML.OnnxRuntime.NamedOnnxValue.CreateFromTensor("past_value", cache.Clone()),
            Microsoft.ML.OnnxRuntime.NamedOnnxValue.CreateFromTensor("seqlens_k", new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<int>(new[] { past }, [1])),
            Microsoft.ML.OnnxRuntime.NamedOnnxValue.CreateFromTensor("total_sequence_length", new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<int>(new[] { past + 1 }, Array.Empty<int>())),
        ];
    }

    [TestMethod]
    public void PresentsNotBoundToThePastGetThePastAndTheNewToken()
    {
        using var session = Session(Heads);
        var qkv = Enumerable.Range(0, 3 * Heads * HeadSize).Select(i => (i % 5) * 0.5f - 1).ToArray();
        var inputs = Inputs(Heads, past: 3, qkv);
        using var results = session.Run(inputs);
        var past = (Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<Microsoft.ML.OnnxRuntime.Float16>)inputs[1].Value;
        var present = results.Single(r => r.Name == "present_key").AsTensor<Microsoft.ML.OnnxRuntime.Float16>();
        for (int h = 0; h < Heads; h++)
        {
            for (int j = 0; j < Capacity; j++)
            {
                for (int x = 0; x < HeadSize; x++)
                {
                    float expected = j == 3 ? qkv[Heads * HeadSize + h * HeadSize + x] : (float)past[0, h, j, x];
                    Assert.AreEqual(expected, (float)present[0, h, j, x], $"head {h} position {j} element {x}");
                }
            }
        }
    }

    [TestMethod]
    public void ACacheOfAnotherHeadCountIsRefusedByName()
    {
        using var session = Session(3);
        var qkv = new float[3 * Heads * HeadSize];
        var e = Assert.ThrowsExactly<Microsoft.ML.OnnxRuntime.OnnxRuntimeException>(() => session.Run(Inputs(3, past: 2, qkv)).Dispose());
        StringAssert.Contains(e.Message, "Float16CacheAttention");
        StringAssert.Contains(e.Message, "past_key has shape (1, 3, 8, 16); expected (1, 2, capacity, D)");
    }

    [TestMethod]
    public void ALengthBeyondTheCacheIsRefused()
    {
        using var session = Session(Heads);
        var e = Assert.ThrowsExactly<Microsoft.ML.OnnxRuntime.OnnxRuntimeException>(() => session.Run(Inputs(Heads, past: Capacity, new float[3 * Heads * HeadSize])).Dispose());
        StringAssert.Contains(e.Message, "seqlens_k + 1 = 9 does not fit");
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Native;

/// <summary>
/// Registers the <see cref="OnnxGptOperators.Domain"/> operators with ONNX Runtime as custom operators whose kernels
/// are C# methods: an <c>OrtCustomOp</c> table (onnxruntime_c_api.h) of unmanaged-callable function pointers, built
/// once per process, in one custom-op domain that every session's options get (<see cref="AddTo"/>). A model that does
/// not use the domain is unaffected. The kernels run on the CPU execution provider; they call back into ONNX
/// Runtime through the same C API table as <see cref="OrtNative"/>.
/// </summary>
internal static unsafe class CustomOperators
{
    // Indices into OrtApi, counted from its first member (see OrtNative).
    private const int CreateStatusIndex = 0;
    private const int GetTensorMutableDataIndex = 51;
    private const int GetTensorElementTypeIndex = 60;
    private const int GetDimensionsCountIndex = 61;
    private const int GetDimensionsIndex = 62;
    private const int GetTensorTypeAndShapeIndex = 65;
    private const int KernelInfoGetAttributeInt64Index = 86;
    private const int KernelContextGetInputCountIndex = 88;
    private const int KernelContextGetOutputCountIndex = 89;
    private const int KernelContextGetInputIndex = 90;
    private const int KernelContextGetOutputIndex = 91;
    private const int ReleaseTensorTypeAndShapeInfoIndex = 99;
    private const int CreateCustomOpDomainIndex = 26;
    private const int CustomOpDomainAddIndex = 27;
    private const int AddCustomOpDomainIndex = 28;
    private const int KernelContextParallelForIndex = 274;   // ONNX Runtime 1.17 on

    // The OrtCustomOp version: 17 has the V2 kernel functions (errors as statuses) and opset ranges, not the
    // in-place and alias maps of 18 and later, which stay unread.
    private const uint OpVersion = 17;
    private const int RuntimeException = 6;   // ORT_RUNTIME_EXCEPTION

    // Below this many key rows read (summed over the step's pairs, a tile of 4 queries reading each once), a step runs on the calling thread.
    private const long InlineKeyRows = 2048;
    private const int Float = 1, Int32 = 6, Float16 = 10;   // ONNXTensorElementDataType

    private static readonly Lazy<IntPtr> s_domain = new(() =>
    {
        var domain = CreateDomain();
        FirstSession(domain);
        return domain;
    });

    /// <summary>Adds the OnnxGpt domain to <paramref name="options"/> (before a session is created from them).</summary>
    public static void AddTo(SessionOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Add(options, s_domain.Value);
    }

    private static void Add(SessionOptions options, IntPtr domain)
    {
        var status = ((delegate* unmanaged[Stdcall]<IntPtr, IntPtr, IntPtr>)OrtNative.Api[AddCustomOpDomainIndex])(options.DangerousGetHandle(), domain);
        OrtNative.ThrowIfError(status, $"registering the '{OnnxGptOperators.Domain}' operators");
    }

    /// <summary>
    /// Creates one session with the domain, once, before any other can: the first session that has a custom domain
    /// adds it to ONNX's process-wide table of domains, which ONNX Runtime checks and fills without a lock, so two
    /// sessions created at once from fresh options would both add it and one would fail. The model is the smallest
    /// there is (one Identity node), written out in protobuf's wire format.
    /// </summary>
    private static void FirstSession(IntPtr domain)
    {
        using var options = new SessionOptions();
        Add(options, domain);
        using var session = new InferenceSession(IdentityModel(), options);
    }

    private static byte[] IdentityModel()
    {
        // ModelProto { ir_version 8 (1); opset_import (8) { version 13 (2) }; graph (7) { node (1) { input "x" (1),
        // output "y" (2), op_type "Identity" (4) }; name "g" (2); input (11) / output (12) { name (1), type (2)
        // { tensor_type (1) { elem_type 1 (1) } } } } }
        static byte[] Message(int field, params byte[][] parts) => [.. Tag(field, 2), .. Varint(parts.Sum(p => p.Length)), .. parts.SelectMany(p => p)];
        static byte[] Text(int field, string text) => Message(field, System.Text.Encoding.UTF8.GetBytes(text));
        static byte[] Number(int field, int value) => [.. Tag(field, 0), .. Varint(value)];
        static byte[] Tag(int field, int wire) => Varint(field << 3 | wire);
        static byte[] Varint(int value)
        {
            var bytes = new List<byte>();
            for (; value >= 0x80; value >>= 7)
            {
                bytes.Add((byte)(value | 0x80));
            }

            bytes.Add((byte)value);
            return [.. bytes];
        }

        byte[] Value(int field, string name) => Message(field, Text(1, name), Message(2, Message(1, Number(1, 1))));
        return [.. Number(1, 8), .. Message(8, Number(2, 13)),
            .. Message(7, Message(1, Text(1, "x"), Text(2, "y"), Text(4, "Identity")), Text(2, "g"), Value(11, "x"), Value(12, "y"))];
    }

    /// <summary>The OrtCustomOp struct, field for field (onnxruntime_c_api.h), up to version 17's members.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct OrtCustomOp
    {
        public uint Version;
        public IntPtr CreateKernel;
        public IntPtr GetName;
        public IntPtr GetExecutionProviderType;
        public IntPtr GetInputType;
        public IntPtr GetInputTypeCount;
        public IntPtr GetOutputType;
        public IntPtr GetOutputTypeCount;
        public IntPtr KernelCompute;
        public IntPtr KernelDestroy;
        public IntPtr GetInputCharacteristic;
        public IntPtr GetOutputCharacteristic;
        public IntPtr GetInputMemoryType;
        public IntPtr GetVariadicInputMinArity;
        public IntPtr GetVariadicInputHomogeneity;
        public IntPtr GetVariadicOutputMinArity;
        public IntPtr GetVariadicOutputHomogeneity;
        public IntPtr CreateKernelV2;
        public IntPtr KernelComputeV2;
        public IntPtr InferOutputShapeFn;
        public IntPtr GetStartVersion;
        public IntPtr GetEndVersion;
        public IntPtr GetMayInplace;
        public IntPtr ReleaseMayInplace;
        public IntPtr GetAliasMap;
        public IntPtr ReleaseAliasMap;
    }

    private static readonly IntPtr s_name = Utf8(OnnxGptOperators.Float16CacheAttention);
    private static readonly IntPtr s_cpu = Utf8("CPUExecutionProvider");
    private static readonly IntPtr s_numHeads = Utf8("num_heads");

    private static IntPtr Utf8(string text) => Marshal.StringToCoTaskMemUTF8(text);

    private static IntPtr CreateDomain()
    {
        // Never freed: ONNX Runtime keeps pointers to the op table and the domain for as long as sessions use them.
        var op = (OrtCustomOp*)NativeMemory.AllocZeroed((nuint)sizeof(OrtCustomOp));
        op->Version = OpVersion;
        op->CreateKernel = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, IntPtr, IntPtr, IntPtr>)&CreateKernel;
        op->GetName = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, IntPtr>)&GetName;
        op->GetExecutionProviderType = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, IntPtr>)&GetExecutionProviderType;
        op->GetInputType = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, nuint, int>)&GetInputType;
        op->GetInputTypeCount = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, nuint>)&GetInputTypeCount;
        op->GetOutputType = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, nuint, int>)&GetOutputType;
        op->GetOutputTypeCount = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, nuint>)&GetOutputTypeCount;
        op->KernelCompute = (IntPtr)(delegate* unmanaged[Stdcall]<IntPtr, IntPtr, void>)&KernelCompute;
        op->KernelDestroy = (IntPtr)(delegate* unmanaged[Stdcall]<IntPtr, void>)&KernelDestroy;
        op->GetInputCharacteristic = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, nuint, int>)&Required;
        op->GetOutputCharacteristic = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, nuint, int>)&Required;
        op->GetInputMemoryType = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, nuint, int>)&DefaultMemory;
        op->GetVariadicInputMinArity = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, int>)&One;
        op->GetVariadicInputHomogeneity = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, int>)&One;
        op->GetVariadicOutputMinArity = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, int>)&One;
        op->GetVariadicOutputHomogeneity = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, int>)&One;
        op->CreateKernelV2 = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, IntPtr, IntPtr, IntPtr*, IntPtr>)&CreateKernelV2;
        op->KernelComputeV2 = (IntPtr)(delegate* unmanaged[Stdcall]<IntPtr, IntPtr, IntPtr>)&KernelComputeV2;
        op->GetStartVersion = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, int>)&StartVersion;
        op->GetEndVersion = (IntPtr)(delegate* unmanaged[Stdcall]<OrtCustomOp*, int>)&EndVersion;

        IntPtr domain = IntPtr.Zero;
        var name = Utf8(OnnxGptOperators.Domain);
        OrtNative.ThrowIfError(((delegate* unmanaged[Stdcall]<IntPtr, IntPtr*, IntPtr>)OrtNative.Api[CreateCustomOpDomainIndex])(name, &domain),
            $"creating the '{OnnxGptOperators.Domain}' operator domain");
        OrtNative.ThrowIfError(((delegate* unmanaged[Stdcall]<IntPtr, OrtCustomOp*, IntPtr>)OrtNative.Api[CustomOpDomainAddIndex])(domain, op),
            $"adding {OnnxGptOperators.Float16CacheAttention} to the '{OnnxGptOperators.Domain}' domain");
        return domain;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static IntPtr GetName(OrtCustomOp* op) => s_name;

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static IntPtr GetExecutionProviderType(OrtCustomOp* op) => s_cpu;

    // Inputs: qkv float, past key and value float16, seqlens_k and total_sequence_length int32.
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static int GetInputType(OrtCustomOp* op, nuint index) => index switch { 0 => Float, 1 or 2 => Float16, _ => Int32 };

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static nuint GetInputTypeCount(OrtCustomOp* op) => 5;

    // Outputs: attention float, present key and value float16.
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static int GetOutputType(OrtCustomOp* op, nuint index) => index == 0 ? Float : Float16;

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static nuint GetOutputTypeCount(OrtCustomOp* op) => 3;

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static int Required(OrtCustomOp* op, nuint index) => 0;   // INPUT_OUTPUT_REQUIRED

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static int DefaultMemory(OrtCustomOp* op, nuint index) => 0;   // OrtMemTypeDefault

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static int One(OrtCustomOp* op) => 1;

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static int StartVersion(OrtCustomOp* op) => OnnxGptOperators.DomainVersion;

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static int EndVersion(OrtCustomOp* op) => int.MaxValue;

    /// <summary>The kernel is its head count, the one attribute (kept in the pointer; nothing to free).</summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static IntPtr CreateKernel(OrtCustomOp* op, IntPtr api, IntPtr info)
    {
        IntPtr kernel;
        var status = CreateKernelCore(info, &kernel);
        OrtNative.Release(status);   // (this older entry point has no way to report it)
        return status == IntPtr.Zero ? kernel : IntPtr.Zero;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static IntPtr CreateKernelV2(OrtCustomOp* op, IntPtr api, IntPtr info, IntPtr* kernel) => CreateKernelCore(info, kernel);

    private static IntPtr CreateKernelCore(IntPtr info, IntPtr* kernel)
    {
        long heads = 0;
        var status = ((delegate* unmanaged[Stdcall]<IntPtr, IntPtr, long*, IntPtr>)OrtNative.Api[KernelInfoGetAttributeInt64Index])(info, s_numHeads, &heads);
        if (status != IntPtr.Zero)
        {
            return status;
        }

        if (heads is < 1 or > 4096)
        {
            return Error($"{OnnxGptOperators.Float16CacheAttention}: attribute num_heads is {heads}; expected 1 to 4096.");
        }

        *kernel = (IntPtr)heads;
        return IntPtr.Zero;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static void KernelDestroy(IntPtr kernel)
    {
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static void KernelCompute(IntPtr kernel, IntPtr context)
    {
        // Only for an ONNX Runtime that ignores KernelComputeV2; there an error cannot be reported, only not computed.
        var status = Compute((int)kernel, context);
        OrtNative.Release(status);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static IntPtr KernelComputeV2(IntPtr kernel, IntPtr context) => Compute((int)kernel, context);

    private static IntPtr Error(string message)
    {
        var text = Utf8(message);
        try
        {
            return ((delegate* unmanaged[Stdcall]<int, IntPtr, IntPtr>)OrtNative.Api[CreateStatusIndex])(RuntimeException, text);
        }
        finally
        {
            Marshal.FreeCoTaskMem(text);
        }
    }

    /// <summary>Thrown inside <see cref="Compute"/> for a tensor that does not fit the operator; becomes its status.</summary>
    private sealed class ShapeException(string message) : Exception(message);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static IntPtr Compute(int heads, IntPtr context)
    {
        try
        {
            ComputeCore(heads, context);
            return IntPtr.Zero;
        }
        catch (OrtStatusException e)
        {
            return e.Status;
        }
        catch (Exception e)
        {
            return Error($"{OnnxGptOperators.Float16CacheAttention}: {e.Message}");
        }
    }

    /// <summary>An ONNX Runtime call that failed: its status, handed back as the kernel's own.</summary>
    private sealed class OrtStatusException(IntPtr status) : Exception("ONNX Runtime call failed")
    {
        public IntPtr Status { get; } = status;
    }

    private static void Call(IntPtr status)
    {
        if (status != IntPtr.Zero)
        {
            throw new OrtStatusException(status);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ComputeCore(int heads, IntPtr context)
    {
        var api = OrtNative.Api;
        nuint inputs, outputs;
        Call(((delegate* unmanaged[Stdcall]<IntPtr, nuint*, IntPtr>)api[KernelContextGetInputCountIndex])(context, &inputs));
        Call(((delegate* unmanaged[Stdcall]<IntPtr, nuint*, IntPtr>)api[KernelContextGetOutputCountIndex])(context, &outputs));
        if (inputs != 5 || outputs != 3)
        {
            throw new ShapeException($"expected 5 inputs and 3 outputs; the node has {inputs} and {outputs}.");
        }

        Span<long> qkvShape = stackalloc long[3], keyShape = stackalloc long[4], valueShape = stackalloc long[4], lengthsShape = stackalloc long[1];
        var qkv = (float*)Input(context, 0, "qkv", Float, qkvShape, 3);
        var pastKey = Input(context, 1, "past_key", Float16, keyShape, 4);
        var pastValue = Input(context, 2, "past_value", Float16, valueShape, 4);
        var seqLens = (int*)Input(context, 3, "seqlens_k", Int32, lengthsShape, 1);
        Span<long> none = stackalloc long[1];
        var totalData = (int*)Input(context, 4, "total_sequence_length", Int32, none, -1);

        long batch = qkvShape[0], t = qkvShape[1];
        long capacity = keyShape[2], d = keyShape[3];
        if (keyShape[0] != batch || keyShape[1] != heads || d % Float16CacheAttention.Lanes != 0 || d == 0)
        {
            throw new ShapeException($"past_key has shape ({string.Join(", ", keyShape.ToArray())}); expected ({batch}, {heads}, capacity, D) with D a positive multiple of {Float16CacheAttention.Lanes}.");
        }

        if (!valueShape.SequenceEqual(keyShape))
        {
            throw new ShapeException($"past_value has shape ({string.Join(", ", valueShape.ToArray())}); expected past_key's ({string.Join(", ", keyShape.ToArray())}).");
        }

        if (qkvShape[2] != 3 * heads * d)
        {
            throw new ShapeException($"qkv's last dimension is {qkvShape[2]}; expected 3 × {heads} heads × {d} = {3 * heads * d}.");
        }

        if (lengthsShape[0] != batch)
        {
            throw new ShapeException($"seqlens_k has {lengthsShape[0]} rows; expected {batch}.");
        }

        int rows = checked((int)batch), tokens = checked((int)t), total = *totalData;
        bool firstPrompt = tokens == total;
        Span<int> past = rows <= 256 ? stackalloc int[rows] : new int[rows];
        Span<int> count = rows <= 256 ? stackalloc int[rows] : new int[rows];
        for (int b = 0; b < rows; b++)
        {
            long length = (long)seqLens[b] + 1;
            (past[b], count[b]) = firstPrompt ? (0, (int)Math.Clamp(length, 0, tokens)) : ((int)(length - tokens), tokens);
            if (length < 1 || length > capacity || length > total || (firstPrompt && length > tokens) || past[b] < 0)
            {
                throw new ShapeException($"row {b}: seqlens_k + 1 = {length} does not fit a step of {tokens} tokens with total_sequence_length {total} and a cache of {capacity} positions.");
            }
        }

        Span<long> outputShape = [batch, t, heads * d];
        var output = (float*)Output(context, 0, outputShape);
        var presentKey = Output(context, 1, keyShape);
        var presentValue = Output(context, 2, keyShape);
        long cacheBytes = batch * heads * capacity * d * sizeof(ushort);
        if (presentKey != pastKey)
        {
            Buffer.MemoryCopy(pastKey, presentKey, cacheBytes, cacheBytes);   // not bound to the past's buffer: copy, then write in place
        }

        if (presentValue != pastValue)
        {
            Buffer.MemoryCopy(pastValue, presentValue, cacheBytes, cacheBytes);
        }

        fixed (int* pastRows = past, countRows = count)
        {
            var step = new Float16CacheAttention.Step
            {
                Qkv = qkv,
                Key = (ushort*)presentKey,
                Value = (ushort*)presentValue,
                Output = output,
                Past = pastRows,
                Count = countRows,
                Tokens = tokens,
                Heads = heads,
                Capacity = checked((int)capacity),
                HeadSize = (int)d,
                Scale = 1f / MathF.Sqrt(d),
            };
            // Key rows the step reads: below a few thousand the pairs take less time than handing them to the
            // intra-op threads does (decoding a short context), so they run here, one after the other.
            long work = 0;
            for (int b = 0; b < rows; b++)
            {
                work += (long)(past[b] + count[b]) * Math.Max(1, count[b] / 4) * heads;
            }

            if (work < InlineKeyRows)
            {
                for (int pair = 0; pair < rows * heads; pair++)
                {
                    Float16CacheAttention.Pair(&step, pair / heads, pair % heads);
                }
            }
            else
            {
                Call(((delegate* unmanaged[Stdcall]<IntPtr, delegate* unmanaged[Stdcall]<void*, nuint, void>, nuint, nuint, void*, IntPtr>)api[KernelContextParallelForIndex])(
                    context, &Pair, (nuint)(rows * heads), 0, &step));
            }
            if (step.Failed != 0)
            {
                throw new ShapeException("a (row, head) pair failed (out of memory?).");
            }
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvStdcall)])]
    private static void Pair(void* data, nuint index)
    {
        var step = (Float16CacheAttention.Step*)data;
        try
        {
            Float16CacheAttention.Pair(step, (int)(index / (nuint)step->Heads), (int)(index % (nuint)step->Heads));
        }
        catch (Exception)
        {
            step->Failed = 1;
        }
    }

    /// <summary>Input <paramref name="index"/>'s data, after checking its element type and rank (−1: a scalar or one element).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void* Input(IntPtr context, int index, string name, int elementType, Span<long> shape, int rank)
    {
        var api = OrtNative.Api;
        IntPtr value;
        Call(((delegate* unmanaged[Stdcall]<IntPtr, nuint, IntPtr*, IntPtr>)api[KernelContextGetInputIndex])(context, (nuint)index, &value));
        IntPtr info;
        Call(((delegate* unmanaged[Stdcall]<IntPtr, IntPtr*, IntPtr>)api[GetTensorTypeAndShapeIndex])(value, &info));
        try
        {
            int type;
            nuint dims;
            Call(((delegate* unmanaged[Stdcall]<IntPtr, int*, IntPtr>)api[GetTensorElementTypeIndex])(info, &type));
            Call(((delegate* unmanaged[Stdcall]<IntPtr, nuint*, IntPtr>)api[GetDimensionsCountIndex])(info, &dims));
            if (type != elementType)
            {
                throw new ShapeException($"input '{name}' has element type {type}; expected {elementType}.");
            }

            Span<long> found = stackalloc long[8];
            if ((int)dims > found.Length)
            {
                throw new ShapeException($"input '{name}' has rank {dims}; expected {rank}.");
            }

            fixed (long* p = found)
            {
                Call(((delegate* unmanaged[Stdcall]<IntPtr, long*, nuint, IntPtr>)api[GetDimensionsIndex])(info, p, dims));
            }

            if (rank < 0)
            {
                long elements = 1;
                foreach (long dim in found[..(int)dims])
                {
                    elements *= dim;
                }

                if (elements != 1)
                {
                    throw new ShapeException($"input '{name}' has {elements} elements; expected a scalar.");
                }
            }
            else if ((int)dims != rank)
            {
                throw new ShapeException($"input '{name}' has rank {dims}; expected {rank}.");
            }
            else
            {
                found[..rank].CopyTo(shape);
            }
        }
        finally
        {
            ((delegate* unmanaged[Stdcall]<IntPtr, void>)api[ReleaseTensorTypeAndShapeInfoIndex])(info);
        }

        void* data;
        Call(((delegate* unmanaged[Stdcall]<IntPtr, void**, IntPtr>)api[GetTensorMutableDataIndex])(value, &data));
        return data;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void* Output(IntPtr context, int index, ReadOnlySpan<long> shape)
    {
        var api = OrtNative.Api;
        IntPtr value;
        fixed (long* dims = shape)
        {
            Call(((delegate* unmanaged[Stdcall]<IntPtr, nuint, long*, nuint, IntPtr*, IntPtr>)api[KernelContextGetOutputIndex])(context, (nuint)index, dims, (nuint)shape.Length, &value));
        }

        void* data;
        Call(((delegate* unmanaged[Stdcall]<IntPtr, void**, IntPtr>)api[GetTensorMutableDataIndex])(value, &data));
        return data;
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime.Tensors;
using Microsoft.ML.OnnxRuntime;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Native;

/// <summary>
/// The few ONNX Runtime C API functions the per-token path calls directly. The managed API creates a managed
/// <see cref="OrtValue"/> (and a UTF-8 copy of the name) for every tensor bound, which would cost kilobytes of
/// garbage per generated token; here a tensor over memory we own is created, bound and released natively, with
/// names encoded once. Everything else (sessions, <see cref="OrtIoBinding"/>, run options) stays with the managed
/// API, whose <c>SafeHandle</c>s own the native objects.
/// </summary>
/// <remarks>
/// The functions are read from the <c>OrtApi</c> table by index. The table is append-only across ONNX Runtime
/// releases (its ABI promise), so these indices hold for every version that returns the table for
/// <see cref="ApiVersion"/>.
/// </remarks>
internal static unsafe class OrtNative
{
    /// <summary>The C API version asked for: old enough for any supported ONNX Runtime, new enough for I/O binding.</summary>
    public const uint ApiVersion = 16;

    // Indices into OrtApi (onnxruntime_c_api.h), counted from its first member, CreateStatus.
    private const int GetErrorCodeIndex = 1;
    private const int GetErrorMessageIndex = 2;
    private const int CreateTensorWithDataAsOrtValueIndex = 49;
    private const int ReleaseStatusIndex = 93;
    private const int ReleaseValueIndex = 96;
    private const int BindInputIndex = 136;
    private const int BindOutputIndex = 137;
    private const int ClearBoundInputsIndex = 141;
    private const int ClearBoundOutputsIndex = 142;

    /// <summary>The OrtApi function table (also used by <see cref="CustomOperators"/>).</summary>
    internal static readonly IntPtr* Api = LoadApi();

    private static delegate* unmanaged[Stdcall]<IntPtr, int> GetErrorCode =>
        (delegate* unmanaged[Stdcall]<IntPtr, int>)Api[GetErrorCodeIndex];

    private static delegate* unmanaged[Stdcall]<IntPtr, byte*> GetErrorMessage =>
        (delegate* unmanaged[Stdcall]<IntPtr, byte*>)Api[GetErrorMessageIndex];

    private static delegate* unmanaged[Stdcall]<IntPtr, void> ReleaseStatus =>
        (delegate* unmanaged[Stdcall]<IntPtr, void>)Api[ReleaseStatusIndex];

    /// <summary>
    /// Binds a tensor of <paramref name="shape"/> over <paramref name="data"/> (memory the caller owns and keeps
    /// alive until the binding is replaced or cleared) as input or output <paramref name="name"/>.
    /// </summary>
    /// <param name="binding">The native <c>OrtIoBinding*</c>.</param>
    /// <param name="output">Bind an output rather than an input.</param>
    /// <param name="name">The I/O name, NUL-terminated UTF-8 (see <see cref="NativeName"/>).</param>
    /// <param name="memoryInfo">The native <c>OrtMemoryInfo*</c> describing where <paramref name="data"/> lives.</param>
    /// <param name="data">The tensor's first element.</param>
    /// <param name="bytes">The tensor's size in bytes.</param>
    /// <param name="shape">The tensor's dimensions.</param>
    /// <param name="elementType">The tensor's element type.</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Bind(IntPtr binding, bool output, NativeName name, IntPtr memoryInfo, void* data, long bytes,
        ReadOnlySpan<long> shape, TensorElementType elementType)
    {
        IntPtr value = IntPtr.Zero;
        fixed (long* dims = shape)
        {
            Check(((delegate* unmanaged[Stdcall]<IntPtr, void*, nuint, long*, nuint, int, IntPtr*, IntPtr>)Api[CreateTensorWithDataAsOrtValueIndex])(
                memoryInfo, data, (nuint)bytes, dims, (nuint)shape.Length, (int)elementType, &value), name);
        }

        try
        {
            // The binding keeps its own reference to the tensor, so ours is released at once.
            int index = output ? BindOutputIndex : BindInputIndex;
            Check(((delegate* unmanaged[Stdcall]<IntPtr, byte*, IntPtr, IntPtr>)Api[index])(binding, name.Pointer, value), name);
        }
        finally
        {
            ((delegate* unmanaged[Stdcall]<IntPtr, void>)Api[ReleaseValueIndex])(value);
        }
    }

    /// <summary>Drops every bound input and output, so no binding refers to memory about to be freed.</summary>
    public static void ClearBindings(IntPtr binding)
    {
        ((delegate* unmanaged[Stdcall]<IntPtr, void>)Api[ClearBoundInputsIndex])(binding);
        ((delegate* unmanaged[Stdcall]<IntPtr, void>)Api[ClearBoundOutputsIndex])(binding);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Check(IntPtr status, NativeName name)
    {
        if (status != IntPtr.Zero)
        {
            var (code, message) = TakeError(status);
            throw new OnnxGptException($"ONNX Runtime could not bind '{name}' (error code {code}): {message}");
        }
    }

    /// <summary>A failed call's error code and message; the status is released.</summary>
    private static (int Code, string Message) TakeError(IntPtr status)
    {
        int code = GetErrorCode(status);
        string message = Marshal.PtrToStringUTF8((IntPtr)GetErrorMessage(status)) ?? "(no message)";
        ReleaseStatus(status);
        return (code, message);
    }

    /// <summary>Throws for a failed ONNX Runtime call's status (and releases it); nothing for success (null).</summary>
    internal static void ThrowIfError(IntPtr status, string what)
    {
        if (status != IntPtr.Zero)
        {
            var (code, message) = TakeError(status);
            throw new OnnxGptException($"ONNX Runtime failed {what} (error code {code}): {message}");
        }
    }

    /// <summary>Releases a status (null is fine).</summary>
    internal static void Release(IntPtr status)
    {
        if (status != IntPtr.Zero)
        {
            ReleaseStatus(status);
        }
    }

    private static IntPtr* LoadApi()
    {
        // Make sure the managed API has loaded and initialised the native library first, then load the same
        // library through the managed assembly's own resolution rules, so both talk to one copy.
        _ = OrtEnv.Instance();
        IntPtr getApiBase = IntPtr.Zero;
        if (!(NativeLibrary.TryLoad("onnxruntime", typeof(OrtEnv).Assembly, null, out var library)
                && NativeLibrary.TryGetExport(library, "OrtGetApiBase", out getApiBase)))
        {
            throw new OnnxGptException(
                "cannot find OrtGetApiBase in the ONNX Runtime native library 'onnxruntime'; reference Microsoft.ML.OnnxRuntime (or .Gpu) in the application.");
        }

        var apiBase = ((delegate* unmanaged[Stdcall]<IntPtr*>)getApiBase)();
        var api = ((delegate* unmanaged[Stdcall]<uint, IntPtr*>)apiBase[0])(ApiVersion);
        if (api == null)
        {
            string version = Marshal.PtrToStringUTF8(((delegate* unmanaged[Stdcall]<IntPtr>)apiBase[1])()) ?? "?";
            throw new OnnxGptException($"the ONNX Runtime native library (version {version}) does not provide C API version {ApiVersion}; use ONNX Runtime 1.16 or later.");
        }

        return api;
    }
}

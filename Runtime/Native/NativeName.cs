using System.Runtime.InteropServices;
using System.Text;
using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Native;

/// <summary>A graph I/O name encoded once as NUL-terminated UTF-8 in native memory, for <see cref="OrtNative"/>.</summary>
internal sealed unsafe class NativeName : IDisposable
{
    private byte* _bytes;

    public NativeName(string name)
    {
        Text = name;
        int count = Encoding.UTF8.GetByteCount(name);
        _bytes = (byte*)NativeMemory.Alloc((nuint)count + 1);
        Encoding.UTF8.GetBytes(name, new Span<byte>(_bytes, count));
        _bytes[count] = 0;
    }

    public string Text { get; }

    public byte* Pointer => _bytes != null ? _bytes : throw new ObjectDisposedException(nameof(NativeName), $"the name '{Text}' was freed.");

    public override string ToString() => Text;

    public void Dispose()
    {
        NativeMemory.Free(_bytes);
        _bytes = null;
    }
}

using System.Buffers;
using System.Numerics.Tensors;
using System.Numerics;
using System.Runtime.CompilerServices;
using OnnxGpt.Contracts;

namespace OnnxGpt.Training;

public static partial class GptLayers
{
    // ---------------------------------------------------------------- feed-forward activation

    private const double GeluTanhScale = 0.7978845608028654; // sqrt(2 / pi)
    private const double GeluCubic = 0.044715;

    /// <summary>output = act(input), element-wise; gelu_new is the tanh form, gelu the exact erf form.</summary>
    public static void ActivationForward<T>(Memory<T> output, ReadOnlyMemory<T> input, int count, Activation activation)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(output.Length >= count && input.Length >= count, "activation buffers");
        Kernels.For(count, 1024, 16, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (start, end) =>
        {
            var x = input.Span[start..end];
            var y = output.Span[start..end];
            switch (activation)
            {
                case Activation.GeluNew:
                    // y = 0.5 x (1 + tanh(s (x + 0.044715 x³)))
                    GeluTanhInner(x, y);
                    TensorPrimitives.Tanh(y, y);
                    TensorPrimitives.Add(y, T.One, y);
                    TensorPrimitives.Multiply(y, x, y);
                    TensorPrimitives.Multiply(y, Half<T>(), y);
                    break;
                case Activation.Gelu:
                    for (int i = 0; i < x.Length; i++)
                    {
                        double v = double.CreateChecked(x[i]);
                        y[i] = T.CreateChecked(0.5 * v * (1.0 + SpecialFunctions.Erf(v / Math.Sqrt(2.0))));
                    }

                    break;
                case Activation.Relu:
                    TensorPrimitives.Max(x, T.Zero, y);
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(activation), activation, "unknown activation");
            }
        });
    }

    /// <summary>dinput += act'(input) · doutput.</summary>
    public static void ActivationBackward<T>(Memory<T> dinput, ReadOnlyMemory<T> input, ReadOnlyMemory<T> doutput, int count, Activation activation)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        Require(dinput.Length >= count && input.Length >= count && doutput.Length >= count, "activation gradient buffers");
        Kernels.For(count, 1024, 24, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (start, end) =>
        {
            var x = input.Span[start..end];
            var dy = doutput.Span[start..end];
            var dx = dinput.Span[start..end];
            switch (activation)
            {
                case Activation.GeluNew:
                {
                    var rented = ArrayPool<T>.Shared.Rent(x.Length);
                    try
                    {
                        var th = rented.AsSpan(0, x.Length);
                        GeluTanhInner(x, th);
                        TensorPrimitives.Tanh(th, th);
                        T half = Half<T>(), s = T.CreateChecked(GeluTanhScale), k3 = T.CreateChecked(3 * GeluCubic);
                        for (int i = 0; i < x.Length; i++)
                        {
                            // d/dx 0.5 x (1 + tanh u) = 0.5 (1 + tanh u) + 0.5 x (1 − tanh² u) s (1 + 3·0.044715 x²)
                            T xi = x[i], t = th[i];
                            T grad = half * (T.One + t) + half * xi * (T.One - t * t) * s * (T.One + k3 * xi * xi);
                            dx[i] += grad * dy[i];
                        }
                    }
                    finally
                    {
                        ArrayPool<T>.Shared.Return(rented);
                    }

                    break;
                }

                case Activation.Gelu:
                    for (int i = 0; i < x.Length; i++)
                    {
                        // d/dx x Φ(x) = Φ(x) + x φ(x)
                        double v = double.CreateChecked(x[i]);
                        double grad = 0.5 * (1.0 + SpecialFunctions.Erf(v / Math.Sqrt(2.0))) + v * Math.Exp(-0.5 * v * v) / Math.Sqrt(2.0 * Math.PI);
                        dx[i] += T.CreateChecked(grad) * dy[i];
                    }

                    break;
                case Activation.Relu:
                    for (int i = 0; i < x.Length; i++)
                    {
                        if (x[i] > T.Zero)
                        {
                            dx[i] += dy[i];
                        }
                    }

                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(activation), activation, "unknown activation");
            }
        });
    }

    /// <summary>u = s (x + 0.044715 x³), the argument of gelu_new's tanh.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GeluTanhInner<T>(ReadOnlySpan<T> x, Span<T> u)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T s = T.CreateChecked(GeluTanhScale), sk = T.CreateChecked(GeluTanhScale * GeluCubic);
        for (int i = 0; i < x.Length; i++)
        {
            T xi = x[i];
            u[i] = xi * (s + sk * xi * xi);
        }
    }

    private static T Half<T>() where T : unmanaged, IFloatingPointIeee754<T> => T.One / (T.One + T.One);
}

using OnnxGpt.Contracts;

namespace OnnxGpt.Runtime.Providers;

/// <summary>
/// One ONNX Runtime execution provider and its settings. The set is closed: <see cref="CpuProvider"/>,
/// <see cref="CudaProvider"/>, <see cref="TensorRtProvider"/>, <see cref="CoreMlProvider"/>,
/// <see cref="DirectMlProvider"/>. <see cref="SessionOptionsFactory"/> turns an ordered preference list of
/// them into session options.
/// </summary>
public abstract record ExecutionProviderOptions
{
    private protected ExecutionProviderOptions() { }

    /// <summary>The short names <see cref="Parse"/> accepts, in the order help text lists them.</summary>
    public static IReadOnlyList<string> KnownNames { get; } = ["cpu", "cuda", "tensorrt", "coreml", "directml"];

    /// <summary>The short name (<c>cpu</c>, <c>cuda</c>, ...), as <see cref="Parse"/> accepts it.</summary>
    public abstract string Name { get; }

    /// <summary>The provider's name in ONNX Runtime (<c>CUDAExecutionProvider</c>, ...), as <c>GetAvailableProviders()</c> lists it.</summary>
    public abstract string OrtName { get; }

    /// <summary>
    /// Parses a provider from the command line: <c>cpu</c>, <c>cuda</c>, <c>tensorrt</c>, <c>coreml</c> or
    /// <c>directml</c> (case-insensitive), optionally with a device id for the GPU ones (<c>cuda:1</c>).
    /// </summary>
    /// <exception cref="ArgumentException">The name is unknown (the message lists the known names) or the device id is not a non-negative integer.</exception>
    public static ExecutionProviderOptions Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var colon = text.IndexOf(':');
        var name = (colon < 0 ? text : text[..colon]).Trim().ToLowerInvariant();
        int? device = null;
        if (colon >= 0)
        {
            if (!int.TryParse(text.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id))
            {
                throw new ArgumentException($"Execution provider '{text}': the device id after ':' must be a non-negative integer, found '{text[(colon + 1)..]}'.", nameof(text));
            }

            device = id;
        }

        ExecutionProviderOptions? provider = name switch
        {
            "cpu" => new CpuProvider(),
            "cuda" => new CudaProvider(device ?? 0),
            "tensorrt" => new TensorRtProvider(device ?? 0),
            "coreml" => new CoreMlProvider(),
            "directml" => new DirectMlProvider(device ?? 0),
            _ => null,
        };

        if (provider is null)
        {
            throw new ArgumentException($"Execution provider '{text}' is unknown; expected one of: {string.Join(", ", KnownNames)}.", nameof(text));
        }

        if (device is not null && provider is CpuProvider or CoreMlProvider)
        {
            throw new ArgumentException($"Execution provider '{text}': {provider.Name} takes no device id; expected '{provider.Name}'.", nameof(text));
        }

        return provider;
    }

    /// <summary>Parses a comma-separated preference list (<c>cuda,cpu</c>).</summary>
    /// <exception cref="ArgumentException">The list is empty or an entry is unknown.</exception>
    public static IReadOnlyList<ExecutionProviderOptions> ParseList(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0)
        {
            throw new ArgumentException($"Execution provider list '{text}' is empty; expected one or more of: {string.Join(", ", KnownNames)}.", nameof(text));
        }

        return [.. parts.Select(Parse)];
    }

    /// <summary>The provider as written in a list: its name, with the device where it has one.</summary>
    public override string ToString() => Name;
}

using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime.Hosting;
using Orleans.Storage;

namespace OnnxGpt.Orleans.Storage;

/// <summary>Registers <see cref="FileGrainStorage"/> on a silo.</summary>
public static class FileGrainStorageExtensions
{
    /// <summary>Grain storage named <paramref name="name"/> in files under <paramref name="directory"/> (the same for every silo that shares it).</summary>
    public static ISiloBuilder AddOnnxGptFileGrainStorage(this ISiloBuilder builder, string name, string directory)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        builder.Services.AddGrainStorage(name, (sp, _) => new FileGrainStorage(directory, sp.GetRequiredService<IGrainStorageSerializer>()));
        return builder;
    }
}

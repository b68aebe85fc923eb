using System.Buffers.Binary;
using System.Runtime.InteropServices;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Exporter.Checkpoints;

/// <summary>
/// Reads Andrej Karpathy's llama2.c checkpoint format (<c>run.c</c>'s legacy version 0, as the tinyllamas ship):
/// a header of 7 little-endian int32 — dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len — where a
/// negative vocab_size means the classifier is a separate matrix at the end of the file; then float32 tensors in
/// run.c's order: token embedding (V, C); per-layer stacks of the attention RMSNorm weights (L, C), wq (L, C, C),
/// wk and wv (L, KV, C), wo (L, C, C), the MLP RMSNorm weights (L, C), w1 (L, F, C), w2 (L, C, F), w3 (L, F, C); the
/// final RMSNorm (C); two unused rotary tables (seq_len · D/2 each); and, when untied, the classifier (V, C).
/// <para>
/// Every matrix is in <c>[out, in]</c> order, so it maps to the Hugging Face Llama names by identity (w1 = gate_proj,
/// w2 = down_proj, w3 = up_proj); q and k keep Meta's interleaved rotary pairs (<see cref="GptConfig.RotaryInterleaved"/>).
/// The header is checked and the exact file length it implies compared with the file's before anything is
/// allocated. run.c fixes ε = 1e-5 and θ = 10000; the begin/end token ids come from the tokenizer, not this file.
/// </para>
/// </summary>
public static class Llama2cCheckpoint
{
    /// <summary>Bytes of the header: 7 int32.</summary>
    public const int HeaderBytes = 7 * sizeof(int);

    /// <summary>The magic of llama2.c's later export versions (1 and 2), "ak42" little-endian, which this reader does not take.</summary>
    private const uint VersionedMagic = 0x616b3432;

    /// <summary>The RMSNorm ε run.c uses.</summary>
    public const double Epsilon = 1e-5;

    /// <summary>The config a llama2.c <c>.bin</c>'s header describes, its size checked against the file's, without reading the weights.</summary>
    public static GptConfig ReadConfig(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = InputFile.OpenRead(path, "llama2.c checkpoint");
        return ReadChecked(stream, path, out _);
    }

    /// <summary>Loads a llama2.c <c>.bin</c>; every problem is an <see cref="OnnxGptException"/> naming the file and what was found.</summary>
    public static GptWeights Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var stream = InputFile.OpenRead(path, "llama2.c checkpoint");   // a regular file only
        using (stream)
        {
            var config = ReadChecked(stream, path, out bool tied);
            var plan = Plan(config, tied);   // only now, with sizes that fit the file, are names and arrays made
            var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var part in plan)
            {
                var data = new float[part.Floats];
                stream.ReadExactly(MemoryMarshal.AsBytes(data.AsSpan()));
                if (!BitConverter.IsLittleEndian)
                {
                    var ints = MemoryMarshal.Cast<float, int>(data.AsSpan());
                    BinaryPrimitives.ReverseEndianness(ints, ints);
                }

                if (part.Names.Length == 0)
                {
                    continue;                                                   // the rotary tables run.c ignores
                }

                long per = part.Floats / part.Names.Length;
                for (int i = 0; i < part.Names.Length; i++)
                {
                    tensors[part.Names[i]] = new Tensor(part.Shape, data.AsSpan((int)(i * per), (int)per).ToArray());
                }
            }

            return new GptWeights(config, tensors, path);
        }
    }

    /// <summary>Reads and checks the header, and the file length it implies against the stream's, leaving the stream after the header.</summary>
    private static GptConfig ReadChecked(Stream stream, string path, out bool tied)
    {
        long length = stream.Length;
        if (length < HeaderBytes)
        {
            throw new OnnxGptException($"{path}: {length} bytes is shorter than llama2.c's {HeaderBytes}-byte header; the file is truncated or not a llama2.c checkpoint.");
        }

        Span<byte> header = stackalloc byte[HeaderBytes];
        stream.ReadExactly(header);
        var config = ReadHeader(header, path, out tied);
        long expected;
        try
        {
            expected = checked(HeaderBytes + Floats(config, tied) * sizeof(float));
        }
        catch (OverflowException)
        {
            throw new OnnxGptException($"{path}: the header's sizes multiply to more bytes than any file holds; this is not a llama2.c checkpoint.");
        }

        if (length != expected)
        {
            throw new OnnxGptException(
                $"{path}: the header (dim {config.Width}, hidden_dim {config.FeedForwardWidth}, n_layers {config.Layers}, n_heads {config.Heads}, " +
                $"n_kv_heads {config.KvHeads}, vocab_size {(tied ? "" : "-")}{config.VocabSize}, seq_len {config.ContextLength}) implies {expected} bytes, " +
                $"but the file has {length}: {(length < expected ? "it is truncated" : "it has data the format does not describe")}.");
        }

        return config;
    }

    /// <summary>The config a header describes, validated; <paramref name="tied"/> is false for a negative vocab_size.</summary>
    internal static GptConfig ReadHeader(ReadOnlySpan<byte> header, string path, out bool tied)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) == VersionedMagic)
        {
            int version = BinaryPrimitives.ReadInt32LittleEndian(header[4..]);
            throw new OnnxGptException(
                $"{path}: this is llama2.c's export version {version} (magic 'ak42'); only the legacy version 0 that run.c reads " +
                "(export.py --version 0) is supported.");
        }

        Span<int> h = stackalloc int[7];
        for (int i = 0; i < 7; i++)
        {
            h[i] = BinaryPrimitives.ReadInt32LittleEndian(header[(4 * i)..]);
        }

        string[] fields = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"];
        for (int i = 0; i < 7; i++)
        {
            if (i == 5 ? h[i] == 0 || h[i] == int.MinValue : h[i] <= 0)
            {
                throw new OnnxGptException(
                    $"{path}: header field {fields[i]} is {h[i]}; expected a positive number{(i == 5 ? " (negative for an untied classifier)" : "")}. Is this a llama2.c checkpoint?");
            }
        }

        tied = h[5] > 0;
        return new GptConfig
        {
            Family = ModelFamily.Llama,
            Norm = NormKind.RmsNorm,
            Positions = PositionEncoding.Rotary,
            Mlp = MlpKind.Gated,
            Activation = Activation.Silu,
            Bias = false,
            Width = h[0],
            InnerWidth = h[1],
            Layers = h[2],
            Heads = h[3],
            KeyValueHeads = h[4],
            VocabSize = Math.Abs(h[5]),
            ContextLength = h[6],
            LayerNormEpsilon = Epsilon,
            RopeTheta = 10000,
            RotaryInterleaved = true,
            TiedHead = tied,
        }.Validate($"{path} (header)");
    }

    /// <summary>The floats after the header, in checked arithmetic (a header of huge sizes overflows rather than wraps).</summary>
    private static long Floats(GptConfig c, bool tied)
    {
        checked
        {
            long dim = c.Width, f = c.FeedForwardWidth, kv = c.KvWidth, layers = c.Layers;
            long perLayer = dim + dim * dim + 2 * kv * dim + dim * dim + dim + 3 * f * dim;
            return c.VocabSize * dim + layers * perLayer + dim + (long)c.ContextLength * c.HeadSize + (tied ? 0 : c.VocabSize * dim);
        }
    }

    /// <summary>run.c's tensor order: each block of floats, the tensors it holds (a per-layer stack splits into one per layer) and their shape.</summary>
    private static List<(long Floats, string[] Names, int[] Shape)> Plan(GptConfig c, bool tied)
    {
        checked
        {
            long dim = c.Width, f = c.FeedForwardWidth, kv = c.KvWidth, layers = c.Layers;
            int d = c.Width, ff = c.FeedForwardWidth, k = c.KvWidth;
            string[] PerLayer(Func<int, string> name) => Enumerable.Range(0, c.Layers).Select(name).ToArray();
            var plan = new List<(long, string[], int[])>
            {
                (c.VocabSize * dim, [LlamaTensorNames.Embedding], [c.VocabSize, d]),
                (layers * dim, PerLayer(LlamaTensorNames.InputNorm), [d]),
                (layers * dim * dim, PerLayer(i => LlamaTensorNames.Attention(i, "q_proj")), [d, d]),
                (layers * kv * dim, PerLayer(i => LlamaTensorNames.Attention(i, "k_proj")), [k, d]),
                (layers * kv * dim, PerLayer(i => LlamaTensorNames.Attention(i, "v_proj")), [k, d]),
                (layers * dim * dim, PerLayer(i => LlamaTensorNames.Attention(i, "o_proj")), [d, d]),
                (layers * dim, PerLayer(LlamaTensorNames.PostAttentionNorm), [d]),
                (layers * f * dim, PerLayer(i => LlamaTensorNames.Mlp(i, "gate_proj")), [ff, d]),
                (layers * dim * f, PerLayer(i => LlamaTensorNames.Mlp(i, "down_proj")), [d, ff]),
                (layers * f * dim, PerLayer(i => LlamaTensorNames.Mlp(i, "up_proj")), [ff, d]),
                (dim, [LlamaTensorNames.FinalNorm], [d]),
                ((long)c.ContextLength * c.HeadSize, [], []),                      // freq_cis_real and freq_cis_imag, seq_len · D/2 each
            };
            if (!tied)
            {
                plan.Add((c.VocabSize * dim, [LlamaTensorNames.LmHead], [c.VocabSize, d]));
            }

            foreach (var (floats, names, _) in plan)
            {
                if (floats > Array.MaxLength)
                {
                    throw new OnnxGptException($"llama2.c checkpoint: a block of {floats} floats ({string.Join(", ", names)}) is larger than one array can hold.");
                }
            }

            return plan;
        }
    }
}

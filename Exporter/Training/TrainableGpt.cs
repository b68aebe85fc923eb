using System.Numerics;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Training;

/// <summary>
/// A GPT whose parameters and gradients live in flat arrays, with a forward pass that keeps what the backward pass
/// needs. The layers are <see cref="GptLayers"/>; the tensor names and shapes are <see cref="GptWeights.ExpectedShapes"/>,
/// so the result converts to and from <see cref="GptWeights"/> without renaming. Not thread-safe: one forward/backward
/// at a time (the layers themselves use all cores).
/// </summary>
/// <typeparam name="T">float to train, double for the gradient check.</typeparam>
public sealed class TrainableGpt<T>
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly Dictionary<string, ParameterSlot> _slots;
    private readonly LayerParameters[] _layers;
    private Buffers? _buffers;
    private int[]? _inputs;
    private int[]? _targets;
    private bool _hasForward;

    public TrainableGpt(GptConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        Config = config.Validate();
        var slots = new List<ParameterSlot>();
        long offset = 0;
        foreach (var (name, shape) in GptWeights.ExpectedShapes(config))
        {
            int length = checked((int)Tensor.ElementCount(shape));
            slots.Add(new ParameterSlot(name, shape, (int)offset, length));
            offset += length;
            if (offset > Array.MaxLength)
            {
                throw new OnnxGptException($"config: {offset}+ parameters do not fit one array; this trainer is for small models.");
            }
        }

        Slots = slots;
        _slots = slots.ToDictionary(s => s.Name, StringComparer.Ordinal);
        Parameters = new T[offset];
        Gradients = new T[offset];
        _layers = new LayerParameters[config.Layers];
        for (int i = 0; i < config.Layers; i++)
        {
            _layers[i] = new LayerParameters(this, TensorNames.Block(i));
        }
    }

    public GptConfig Config { get; }

    /// <summary>Every parameter tensor, in canonical order, with its place in <see cref="Parameters"/>.</summary>
    public IReadOnlyList<ParameterSlot> Slots { get; }

    /// <summary>All parameters, one tensor after another in <see cref="Slots"/> order.</summary>
    public T[] Parameters { get; }

    /// <summary>The gradients of the last <see cref="Backward"/>, laid out like <see cref="Parameters"/>.</summary>
    public T[] Gradients { get; }

    public ParameterSlot Slot(string name) => _slots.TryGetValue(name, out var s)
        ? s
        : throw new KeyNotFoundException($"the model has no parameter '{name}'.");

    public Memory<T> Parameter(string name) => Slice(Parameters, name);

    public Memory<T> Gradient(string name) => Slice(Gradients, name);

    /// <summary>Logits (B·T, V) of the last forward pass.</summary>
    public ReadOnlySpan<T> Logits => _buffers is { } b ? b.Logits.AsSpan(0, b.N * Config.VocabSize) : default;

    /// <summary>
    /// GPT-2's initialisation as nanoGPT does it: every matrix and embedding N(0, 0.02), the residual projections
    /// (<c>c_proj</c>) N(0, 0.02/√(2·layers)), biases 0, layer-norm weights 1. Draws in canonical tensor order.
    /// </summary>
    public void InitializeGpt2(TrainingRandom random)
    {
        ArgumentNullException.ThrowIfNull(random);
        double projStd = 0.02 / Math.Sqrt(2.0 * Config.Layers);
        foreach (var slot in Slots)
        {
            var p = Parameters.AsSpan(slot.Offset, slot.Length);
            if (slot.Shape.Length >= 2)
            {
                double std = slot.Name.EndsWith("c_proj.weight", StringComparison.Ordinal) ? projStd : 0.02;
                for (int i = 0; i < p.Length; i++)
                {
                    p[i] = T.CreateChecked(random.NextGaussian() * std);
                }
            }
            else
            {
                p.Fill(slot.Name.EndsWith(".weight", StringComparison.Ordinal) ? T.One : T.Zero);
            }
        }
    }

    /// <summary>Copies weights in (shapes must match this model's config).</summary>
    public void LoadWeights(GptWeights weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        foreach (var slot in Slots)
        {
            var tensor = weights[slot.Name];
            if (!tensor.ShapeEquals(slot.Shape))
            {
                throw new OnnxGptException($"weights: tensor '{slot.Name}' has shape {tensor.ShapeText}, expected {Tensor.FormatShape(slot.Shape)}.");
            }

            var p = Parameters.AsSpan(slot.Offset, slot.Length);
            for (int i = 0; i < p.Length; i++)
            {
                p[i] = T.CreateChecked(tensor.Data[i]);
            }
        }
    }

    public static TrainableGpt<T> FromWeights(GptWeights weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var model = new TrainableGpt<T>(weights.Config);
        model.LoadWeights(weights);
        return model;
    }

    /// <summary>The parameters as float32 <see cref="GptWeights"/> (copies).</summary>
    public GptWeights ToWeights()
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var slot in Slots)
        {
            var data = new float[slot.Length];
            var p = Parameters.AsSpan(slot.Offset, slot.Length);
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = float.CreateChecked(p[i]);
            }

            tensors[slot.Name] = new Tensor((int[])slot.Shape.Clone(), data);
        }

        return new GptWeights(Config, tensors, "trained model");
    }

    /// <summary>
    /// Runs the model on <paramref name="inputs"/> (B·T token ids, row-major (B, T)). With <paramref name="targets"/>
    /// (same shape) it returns the mean cross-entropy in nats per token and keeps what <see cref="Backward"/> needs;
    /// without, it returns NaN and only <see cref="Logits"/> are meaningful.
    /// </summary>
    public T Forward(ReadOnlySpan<int> inputs, ReadOnlySpan<int> targets, int batch, int seq)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(seq);
        if (seq > Config.ContextLength)
        {
            throw new ArgumentOutOfRangeException(nameof(seq), seq, $"the model has {Config.ContextLength} positions.");
        }

        int n = checked(batch * seq);
        if (inputs.Length != n)
        {
            throw new ArgumentException($"inputs hold {inputs.Length} tokens, expected batch × seq = {n}.", nameof(inputs));
        }

        if (!targets.IsEmpty && targets.Length != n)
        {
            throw new ArgumentException($"targets hold {targets.Length} tokens, expected batch × seq = {n}.", nameof(targets));
        }

        CheckTokens(inputs, nameof(inputs));
        CheckTokens(targets, nameof(targets));

        if (_buffers is null || _buffers.Batch != batch || _buffers.Seq != seq)
        {
            _buffers = null; // let the old ones go before allocating new ones
            _buffers = new Buffers(Config, batch, seq);
        }

        var buf = _buffers;
        _inputs = inputs.ToArray();
        _targets = targets.IsEmpty ? null : targets.ToArray();
        int c = Config.Width, f = Config.FeedForwardWidth, v = Config.VocabSize, h = Config.Heads;
        T eps = T.CreateChecked(Config.LayerNormEpsilon);

        GptLayers.EncoderForward<T>(buf.Encoded, _inputs, Parameter(TensorNames.Wte).Span, Parameter(TensorNames.Wpe).Span, batch, seq, c);
        Memory<T> residual = buf.Encoded;
        for (int l = 0; l < Config.Layers; l++)
        {
            var p = _layers[l];
            var a = buf.Layers[l];
            // x = x + attn(ln_1(x))
            GptLayers.LayerNormForward<T>(a.Ln1, a.Ln1Mean, a.Ln1Rstd, residual, p.Ln1W, p.Ln1B, n, c, eps);
            GptLayers.MatmulForward<T>(a.Qkv, a.Ln1, p.AttnW, p.AttnB, n, c, 3 * c);
            GptLayers.AttentionForward<T>(a.AttY, a.Att, a.Qkv, batch, seq, c, h);
            GptLayers.MatmulForward<T>(buf.Scratch, a.AttY, p.AttnProjW, p.AttnProjB, n, c, c);
            GptLayers.ResidualForward<T>(a.Residual2.AsSpan(0, n * c), residual.Span[..(n * c)], buf.Scratch.AsSpan(0, n * c));
            // x = x + mlp(ln_2(x))
            GptLayers.LayerNormForward<T>(a.Ln2, a.Ln2Mean, a.Ln2Rstd, a.Residual2, p.Ln2W, p.Ln2B, n, c, eps);
            GptLayers.MatmulForward<T>(a.Fch, a.Ln2, p.FcW, p.FcB, n, c, f);
            GptLayers.ActivationForward<T>(a.FchAct, a.Fch, n * f, Config.Activation);
            GptLayers.MatmulForward<T>(buf.Scratch, a.FchAct, p.FcProjW, p.FcProjB, n, f, c);
            GptLayers.ResidualForward<T>(a.Residual3.AsSpan(0, n * c), a.Residual2.AsSpan(0, n * c), buf.Scratch.AsSpan(0, n * c));
            residual = a.Residual3;
        }

        GptLayers.LayerNormForward<T>(buf.LnF, buf.LnFMean, buf.LnFRstd, residual, Parameter(TensorNames.LnF + ".weight"),
            Config.Bias ? Parameter(TensorNames.LnF + ".bias") : Memory<T>.Empty, n, c, eps);
        GptLayers.HeadForward<T>(buf.Logits, buf.LnF, HeadParameter(Parameters), n, c, v);
        _hasForward = _targets is not null;
        return _targets is null
            ? T.NaN
            : GptLayers.CrossEntropyForward<T>(buf.Probs, buf.Losses, buf.Logits, _targets, n, v);
    }

    /// <summary>Zeroes <see cref="Gradients"/>.</summary>
    public void ZeroGradients() => Array.Clear(Gradients);

    /// <summary>
    /// Adds the gradient of the last forward pass's mean loss to <see cref="Gradients"/> (call
    /// <see cref="ZeroGradients"/> first unless accumulating).
    /// </summary>
    public void Backward()
    {
        if (!_hasForward || _buffers is null || _inputs is null || _targets is null)
        {
            throw new InvalidOperationException("Backward needs a forward pass with targets first.");
        }

        var buf = _buffers;
        int batch = buf.Batch, seq = buf.Seq, n = buf.N;
        int c = Config.Width, f = Config.FeedForwardWidth, v = Config.VocabSize, h = Config.Heads;
        Array.Clear(buf.DLogits);
        Array.Clear(buf.DLnF);
        Array.Clear(buf.DResidual);

        GptLayers.CrossEntropyBackward<T>(buf.DLogits, buf.Probs, _targets, T.One / T.CreateChecked(n), n, v);
        GptLayers.HeadBackward<T>(buf.DLnF, HeadParameter(Gradients), buf.DLogits, buf.LnF, HeadParameter(Parameters), n, c, v);
        Memory<T> lastResidual = Config.Layers > 0 ? buf.Layers[^1].Residual3 : buf.Encoded;
        GptLayers.LayerNormBackward<T>(buf.DResidual, Gradient(TensorNames.LnF + ".weight"),
            Config.Bias ? Gradient(TensorNames.LnF + ".bias") : Memory<T>.Empty, buf.DLnF, lastResidual,
            Parameter(TensorNames.LnF + ".weight"), buf.LnFMean, buf.LnFRstd, n, c);

        // buf.DResidual holds dLoss/d(layer output); each layer turns it, in place, into dLoss/d(layer input).
        for (int l = Config.Layers - 1; l >= 0; l--)
        {
            var p = _layers[l];
            var d = p.Grads;
            var a = buf.Layers[l];
            Memory<T> input = l == 0 ? buf.Encoded : buf.Layers[l - 1].Residual3;

            // Residual3 = Residual2 + mlp(...): both branches get dResidual.
            buf.DFchAct.AsSpan(0, n * f).Clear();
            GptLayers.MatmulBackward<T>(buf.DFchAct, d.FcProjW, d.FcProjB, buf.DResidual, a.FchAct, p.FcProjW, n, f, c);
            buf.DFch.AsSpan(0, n * f).Clear();
            GptLayers.ActivationBackward<T>(buf.DFch, a.Fch, buf.DFchAct, n * f, Config.Activation);
            buf.DLn.AsSpan(0, n * c).Clear();
            GptLayers.MatmulBackward<T>(buf.DLn, d.FcW, d.FcB, buf.DFch, a.Ln2, p.FcW, n, c, f);
            GptLayers.LayerNormBackward<T>(buf.DResidual, d.Ln2W, d.Ln2B, buf.DLn, a.Residual2, p.Ln2W, a.Ln2Mean, a.Ln2Rstd, n, c);

            // Residual2 = input + attn(...)
            buf.DAttY.AsSpan(0, n * c).Clear();
            GptLayers.MatmulBackward<T>(buf.DAttY, d.AttnProjW, d.AttnProjB, buf.DResidual, a.AttY, p.AttnProjW, n, c, c);
            buf.DQkv.AsSpan(0, n * 3 * c).Clear();
            GptLayers.AttentionBackward<T>(buf.DQkv, buf.DAttY, a.Qkv, a.Att, batch, seq, c, h);
            buf.DLn.AsSpan(0, n * c).Clear();
            GptLayers.MatmulBackward<T>(buf.DLn, d.AttnW, d.AttnB, buf.DQkv, a.Ln1, p.AttnW, n, c, 3 * c);
            GptLayers.LayerNormBackward<T>(buf.DResidual, d.Ln1W, d.Ln1B, buf.DLn, input, p.Ln1W, a.Ln1Mean, a.Ln1Rstd, n, c);
        }

        GptLayers.EncoderBackward<T>(Gradient(TensorNames.Wte).Span, Gradient(TensorNames.Wpe).Span, buf.DResidual.AsSpan(0, n * c),
            _inputs, batch, seq, c);
    }

    private Memory<T> HeadParameter(T[] array) => Slice(array, Config.TiedHead ? TensorNames.Wte : TensorNames.LmHead);

    private Memory<T> Slice(T[] array, string name)
    {
        var s = Slot(name);
        return array.AsMemory(s.Offset, s.Length);
    }

    private Memory<T> SliceOrEmpty(T[] array, string name) =>
        _slots.TryGetValue(name, out var s) ? array.AsMemory(s.Offset, s.Length) : Memory<T>.Empty;

    private void CheckTokens(ReadOnlySpan<int> tokens, string name)
    {
        foreach (var t in tokens)
        {
            if ((uint)t >= (uint)Config.VocabSize)
            {
                throw new ArgumentOutOfRangeException(name, t, $"token id {t} is outside the vocabulary [0, {Config.VocabSize}).");
            }
        }
    }

    /// <summary>One block's parameter (and, in <see cref="Grads"/>, gradient) views; biases empty when the config has none.</summary>
    private sealed class LayerParameters
    {
        public LayerParameters(TrainableGpt<T> model, string prefix, bool gradients = false)
        {
            var array = gradients ? model.Gradients : model.Parameters;
            Memory<T> P(string name) => model.Slice(array, prefix + name);
            Memory<T> B(string name) => model.SliceOrEmpty(array, prefix + name);
            Ln1W = P("ln_1.weight");
            Ln1B = B("ln_1.bias");
            AttnW = P("attn.c_attn.weight");
            AttnB = B("attn.c_attn.bias");
            AttnProjW = P("attn.c_proj.weight");
            AttnProjB = B("attn.c_proj.bias");
            Ln2W = P("ln_2.weight");
            Ln2B = B("ln_2.bias");
            FcW = P("mlp.c_fc.weight");
            FcB = B("mlp.c_fc.bias");
            FcProjW = P("mlp.c_proj.weight");
            FcProjB = B("mlp.c_proj.bias");
            Grads = gradients ? this : new LayerParameters(model, prefix, gradients: true);
        }

        public Memory<T> Ln1W { get; }
        public Memory<T> Ln1B { get; }
        public Memory<T> AttnW { get; }
        public Memory<T> AttnB { get; }
        public Memory<T> AttnProjW { get; }
        public Memory<T> AttnProjB { get; }
        public Memory<T> Ln2W { get; }
        public Memory<T> Ln2B { get; }
        public Memory<T> FcW { get; }
        public Memory<T> FcB { get; }
        public Memory<T> FcProjW { get; }
        public Memory<T> FcProjB { get; }
        public LayerParameters Grads { get; }
    }

    /// <summary>Per-layer activations kept for the backward pass.</summary>
    private sealed class LayerActivations(int n, int c, int f, int heads, int batch, int seq)
    {
        public T[] Ln1 { get; } = new T[n * c];
        public T[] Ln1Mean { get; } = new T[n];
        public T[] Ln1Rstd { get; } = new T[n];
        public T[] Qkv { get; } = new T[n * 3 * c];
        public T[] Att { get; } = new T[batch * heads * seq * seq];
        public T[] AttY { get; } = new T[n * c];
        public T[] Residual2 { get; } = new T[n * c];
        public T[] Ln2 { get; } = new T[n * c];
        public T[] Ln2Mean { get; } = new T[n];
        public T[] Ln2Rstd { get; } = new T[n];
        public T[] Fch { get; } = new T[n * f];
        public T[] FchAct { get; } = new T[n * f];
        public T[] Residual3 { get; } = new T[n * c];
    }

    /// <summary>Activations and activation gradients for one (B, T).</summary>
    private sealed class Buffers
    {
        public Buffers(GptConfig config, int batch, int seq)
        {
            Batch = batch;
            Seq = seq;
            N = checked(batch * seq);
            int c = config.Width, f = config.FeedForwardWidth, v = config.VocabSize;
            long largest = Math.Max(Math.Max((long)N * f, (long)N * v), Math.Max((long)N * 3 * c, (long)batch * config.Heads * seq * seq));
            if (largest > Array.MaxLength)
            {
                throw new ArgumentOutOfRangeException(nameof(batch),
                    $"batch {batch} × seq {seq} needs an activation buffer of {largest} values, more than one array holds ({Array.MaxLength}); use a smaller batch.");
            }

            Encoded = new T[N * c];
            Layers = Enumerable.Range(0, config.Layers).Select(_ => new LayerActivations(N, c, f, config.Heads, batch, seq)).ToArray();
            Scratch = new T[N * c];
            LnF = new T[N * c];
            LnFMean = new T[N];
            LnFRstd = new T[N];
            Logits = new T[N * v];
            Probs = new T[N * v];
            Losses = new T[N];
            DLogits = new T[N * v];
            DLnF = new T[N * c];
            DResidual = new T[N * c];
            DLn = new T[N * c];
            DAttY = new T[N * c];
            DQkv = new T[N * 3 * c];
            DFch = new T[N * f];
            DFchAct = new T[N * f];
        }

        public int Batch { get; }
        public int Seq { get; }
        public int N { get; }
        public T[] Encoded { get; }
        public LayerActivations[] Layers { get; }
        public T[] Scratch { get; }
        public T[] LnF { get; }
        public T[] LnFMean { get; }
        public T[] LnFRstd { get; }
        public T[] Logits { get; }
        public T[] Probs { get; }
        public T[] Losses { get; }
        public T[] DLogits { get; }
        public T[] DLnF { get; }
        public T[] DResidual { get; }
        public T[] DLn { get; }
        public T[] DAttY { get; }
        public T[] DQkv { get; }
        public T[] DFch { get; }
        public T[] DFchAct { get; }
    }
}

using System.Text.RegularExpressions;
using OnnxGpt.Contracts;
using OnnxGpt.Exporter.Model;

namespace OnnxGpt.Exporter.Checkpoints;

/// <summary>
/// Maps tensor names as Hugging Face GPT-2 checkpoints spell them to the canonical <see cref="TensorNames"/>.
/// <c>GPT2LMHeadModel</c> saves <c>transformer.h.0....</c>; a bare <c>GPT2Model</c> (and OpenAI's published
/// <c>gpt2</c> safetensors) saves <c>h.0....</c> without the prefix.
/// </summary>
internal static partial class HfTensorNames
{
    private static readonly string[] PrefixlessRoots = ["h.", "wte.", "wpe.", "ln_f."];

    /// <summary>The canonical name; names this mapping does not recognise come back unchanged.</summary>
    public static string Canonical(string name)
    {
        if (name.StartsWith("transformer.", StringComparison.Ordinal) || name == TensorNames.LmHead)
        {
            return name;
        }

        foreach (var root in PrefixlessRoots)
        {
            if (name.StartsWith(root, StringComparison.Ordinal))
            {
                return "transformer." + name;
            }
        }

        return name;
    }

    /// <summary>
    /// Whether a canonical name is one of the attention buffers older <c>transformers</c> versions saved:
    /// <c>attn.bias</c> (the causal mask) and <c>attn.masked_bias</c> (the fill value), and Llama's
    /// <c>self_attn.rotary_emb.inv_freq</c> (the rotary frequencies, which the config's rope_theta gives). They are not parameters.
    /// </summary>
    public static bool IsBuffer(string canonicalName) => BufferPattern().IsMatch(canonicalName);

    [GeneratedRegex(@"^(transformer\.h\.[0-9]+\.attn\.(bias|masked_bias)|model\.layers\.[0-9]+\.self_attn\.rotary_emb\.inv_freq)$", RegexOptions.CultureInvariant)]
    private static partial Regex BufferPattern();
}

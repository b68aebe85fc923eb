using System.CommandLine;
namespace OnnxGpt.Cli.Commands;

/// <summary>
/// <c>onnxgpt completion bash|zsh|pwsh</c>: a shell script that completes commands, options and their values. The
/// script asks <c>onnxgpt</c> itself through System.CommandLine's <c>[suggest:POSITION]</c> directive, so completion
/// always matches the installed version.
/// </summary>
internal sealed class CompletionCommand : CliCommand
{
    private static readonly string[] Shells = ["bash", "zsh", "pwsh"];

    private readonly Argument<string> _shell = new("SHELL")
    {
        Description = "bash, zsh or pwsh",
        CustomParser = r =>
        {
            string shell = r.Tokens[0].Value;
            if (Array.IndexOf(Shells, shell) < 0)
            {
                r.AddError($"SHELL must be one of {string.Join(", ", Shells)}; found '{shell}'.");
            }

            return shell;
        },
    };

    public CompletionCommand()
        : base("completion", "print a shell completion script; e.g. in ~/.bashrc: eval \"$(onnxgpt completion bash)\"")
    {
        _shell.CompletionSources.Add(Shells);
        Arguments.Add(_shell);
    }

    protected override int Run(ParseResult parse, TextWriter stdout, TextWriter stderr)
    {
        stdout.Write(Script(parse.GetRequiredValue(_shell)));
        return ExitCodes.Success;
    }

    /// <summary>The completion script for <paramref name="shell"/>.</summary>
    internal static string Script(string shell) => shell switch
    {
        "bash" => """
            _onnxgpt_complete() {
                local IFS=$'\n'
                COMPREPLY=($(compgen -W "$(onnxgpt "[suggest:${COMP_POINT}]" "${COMP_LINE}" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}"))
            }
            complete -o default -F _onnxgpt_complete onnxgpt

            """,
        "zsh" => """
            _onnxgpt_complete() {
                local -a completions
                completions=("${(@f)$(onnxgpt "[suggest:${CURSOR}]" "${BUFFER}" 2>/dev/null)}")
                compadd -a completions
            }
            compdef _onnxgpt_complete onnxgpt

            """,
        _ => """
            Register-ArgumentCompleter -Native -CommandName onnxgpt -ScriptBlock {
                param($wordToComplete, $commandAst, $cursorPosition)
                onnxgpt "[suggest:$cursorPosition]" "$commandAst" 2>$null | ForEach-Object {
                    [System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $_)
                }
            }

            """,
    };
}

using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using OnnxGpt.Cli;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary>
/// The command line as System.CommandLine builds it: values checked when parsed, one line per error naming the option,
/// the value and what is allowed (exit 2), help that states every default, typo suggestions, response files, shell
/// completion, and library hints translated into flags.
/// </summary>
[TestClass]
public sealed class CommandLineTests
{
    private static (int Code, string Out, string Err) Cli(params string[] args) => ExportCommandTests.Cli(args);

    [TestMethod]
    [DataRow("--temperature", "-1", "--temperature must be a number >= 0; found -1.")]
    [DataRow("--top-p", "2", "--top-p must be a number in (0, 1]; found 2.")]
    [DataRow("--max-new-tokens", "-5", "--max-new-tokens must be a whole number >= 0; found -5.")]
    [DataRow("--provider", "foo", "--provider: 'foo' is not an execution provider; expected a comma-separated list of cpu, cuda[:DEVICE], tensorrt[:DEVICE], coreml, directml[:DEVICE].")]
    [DataRow("--temperature", "warm", "--temperature: 'warm' is not a number; expected a number >= 0.")]
    [DataRow("--top-k", "1.5", "--top-k: '1.5' is not a whole number; expected a whole number >= 0.")]
    [DataRow("--repetition-penalty", "0", "--repetition-penalty must be a number > 0; found 0.")]
    [DataRow("--truncate", "right", "--truncate must be one of none, left; found 'right'.")]
    [DataRow("--ids", "1,x", "--ids: 'x' is not a whole number; expected whole numbers separated by commas, e.g. 1,2,3.")]
    public void AValueOutOfRangeIsOneLineNamingTheOptionAndExitsTwo(string option, string value, string expected)
    {
        // The model is never loaded: values are checked when the command line is parsed.
        string[] args = option == "--ids" ? ["generate", "--model", "no-such-model", option, value]
            : ["generate", "--model", "no-such-model", "--prompt", "x", option, value];
        var (code, output, err) = Cli(args);
        Assert.AreEqual(2, code, err);
        Assert.AreEqual("", output);
        Assert.AreEqual($"onnxgpt generate: {expected}{Environment.NewLine}", err);
        Assert.DoesNotContain("Parameter", err);
        Assert.DoesNotContain("System.", err);
    }

    [TestMethod]
    public void HelpOfEveryCommandListsEveryOptionWithItsDefault()
    {
        var root = Program.CreateRootCommand();
        Assert.IsGreaterThanOrEqualTo(7, root.Subcommands.Count);
        foreach (var command in root.Subcommands)
        {
            var (code, help, err) = Cli(command.Name, "--help");
            Assert.AreEqual(0, code, err);
            var lines = help.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
            foreach (var option in command.Options.Where(o => o.Name != "--help"))
            {
                // The option's row starts with its name; its description may wrap, so read up to the next row.
                int row = lines.FindIndex(l => l.TrimStart().StartsWith(option.Name + " ", StringComparison.Ordinal)
                    || l.TrimStart().StartsWith(option.Name + ", ", StringComparison.Ordinal) || l.Trim() == option.Name);   // "--checkpoint, --hf <PATH>": with its aliases
                Assert.IsGreaterThanOrEqualTo(0, row, $"{command.Name} --help does not list {option.Name}:\n{help}");
                string text = string.Join(" ", lines.Skip(row).TakeWhile((l, i) => i == 0 || !l.TrimStart().StartsWith('-')));
                Assert.IsTrue(text.Contains("[default: ", StringComparison.Ordinal) || text.Contains("(REQUIRED)", StringComparison.Ordinal),
                    $"{command.Name} --help: {option.Name} states no default: {text}");
            }
        }

        var (c, generate, _) = Cli("generate", "--help");
        Assert.AreEqual(0, c);
        StringAssert.Contains(generate, "[default: the model's");
        StringAssert.Contains(generate, "--model <DIR> (REQUIRED)");
        var (_, serve, _) = Cli("serve", "--help");
        StringAssert.Contains(serve, "[default: 4]", "--parallel and --cache-conversations");
        StringAssert.Contains(serve, "[default: http://127.0.0.1:8080]");
    }

    [TestMethod]
    public void HelpAndUsageAreTheirOwnExitCodes()
    {
        var (code, output, _) = Cli();
        Assert.AreEqual(2, code, "no command: nothing was done");
        StringAssert.Contains(output, "generate");
        (code, output, _) = Cli("--help");
        Assert.AreEqual(0, code);
        StringAssert.Contains(output, "serve");
        var (helpCode, help, _) = Cli("help", "generate");
        Assert.AreEqual(0, helpCode);
        Assert.AreEqual(Cli("generate", "--help").Out, help, "'onnxgpt help generate' is 'onnxgpt generate --help'");
    }

    [TestMethod]
    public void MistypedOptionsAndCommandsGetTheNearestSpelling()
    {
        var (code, _, err) = Cli("generate", "--model", "m", "--prompt", "x", "--temprature", "1");
        Assert.AreEqual(2, code);
        Assert.AreEqual("onnxgpt generate: unknown option '--temprature'. Did you mean '--temperature'?" + Environment.NewLine, err);

        (code, _, err) = Cli("generat", "--model", "m");
        Assert.AreEqual(2, code);
        StringAssert.StartsWith(err, "onnxgpt: unknown command 'generat'. Did you mean 'generate'?");

        (code, _, err) = Cli("export", "--out", "x", "--preset", "nano", "--qantize", "int4");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "Did you mean '--quantize'?");

        (code, _, err) = Cli("eval", "--model", "m", "--ids", "1,2", "--zzz");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "unknown option '--zzz'. 'onnxgpt eval --help' lists the options.");
    }

    [TestMethod]
    public void ResponseFileGivesTheSameRunAsTheArgumentsItHolds()
    {
        var weights = TestWeights.Random(TestWeights.Small(heads: 2), seed: 85);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.Export(weights, tmp);
        string[] args = ["--ids", "5,17,3", "--max-new-tokens", "4", "--greedy", "--json"];
        File.WriteAllLines(tmp.Sub("args.rsp"), ["--ids 5,17,3", "--max-new-tokens 4", "--greedy", "--json"]);

        var (code, direct, err) = Cli(["generate", "--model", folder, .. args]);
        Assert.AreEqual(0, code, err);
        var (rspCode, viaFile, rspErr) = Cli("generate", "--model", folder, "@" + tmp.Sub("args.rsp"));
        Assert.AreEqual(0, rspCode, rspErr);
        int[] Ids(string json) => JsonDocument.Parse(json.Trim()).RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        CollectionAssert.AreEqual(Ids(direct), Ids(viaFile));
        Assert.HasCount(7, Ids(viaFile));
    }

    [TestMethod]
    public void AnAtSignIsAResponseFileOnlyWhenTheFileExists()
    {
        using var tmp = TestPaths.NewTemp();
        // Not a file: the word reaches the command as typed (here the missing model is what fails).
        var (code, _, err) = Cli("generate", "--model", tmp.Sub("no-model"), "--prompt", "@juliet hello");
        Assert.AreEqual(1, code, err);
        StringAssert.Contains(err, tmp.Sub("no-model"));
        Assert.DoesNotContain("esponse file", err);

        // A file: its words, quotes grouping, '#' lines left out.
        File.WriteAllLines(tmp.Sub("a.rsp"), ["# the model is missing on purpose", $"--model \"{tmp.Sub("other model")}\"", "--ids 1,2"]);
        (code, _, err) = Cli("generate", "@" + tmp.Sub("a.rsp"));
        Assert.AreEqual(1, code, err);
        StringAssert.Contains(err, tmp.Sub("other model"));
    }

    [TestMethod]
    public void CompletionSuggestsOptionsAndTheirValues()
    {
        static string[] Suggest(string line)
        {
            var (code, output, err) = Cli($"[suggest:{line.Length}]", line);
            Assert.AreEqual(0, code, err);
            return output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }

        CollectionAssert.AreEqual(new[] { "--temperature" }, Suggest("onnxgpt generate --tem"));
        CollectionAssert.AreEqual(new[] { "fused", "portable" }, Suggest("onnxgpt export --graph "));
        CollectionAssert.Contains(Suggest("onnxgpt export --preset gpt2-"), "gpt2-medium");
        CollectionAssert.Contains(Suggest("onnxgpt ge"), "generate");

        foreach (var shell in new[] { "bash", "zsh", "pwsh" })
        {
            var (code, script, err) = Cli("completion", shell);
            Assert.AreEqual(0, code, err);
            StringAssert.Contains(script, "[suggest:");
        }

        Assert.AreEqual(2, Cli("completion", "fish").Code);
    }

    [TestMethod]
    public void BashCompletionScriptCompletesThroughTheTool()
    {
        if (OperatingSystem.IsWindows() || !File.Exists("/bin/bash"))
        {
            Assert.Inconclusive("needs bash");
            return;
        }

        using var tmp = TestPaths.NewTemp();
        // A stand-in 'onnxgpt' on PATH that runs this build's tool, as an installed one would.
        string dll = typeof(Program).Assembly.Location;
        string shim = tmp.Sub("onnxgpt");
        File.WriteAllText(shim, $"#!/bin/sh\nexec dotnet '{dll}' \"$@\"\n");
        File.SetUnixFileMode(shim, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.WriteAllText(tmp.Sub("completion.bash"), Cli("completion", "bash").Out);
        string script = $$"""
            source '{{tmp.Sub("completion.bash")}}'
            COMP_LINE='onnxgpt generate --truncate '; COMP_POINT=${#COMP_LINE}
            COMP_WORDS=(onnxgpt generate --truncate ''); COMP_CWORD=3
            _onnxgpt_complete
            printf '%s\n' "${COMPREPLY[@]}"
            """;
        var start = new ProcessStartInfo("/bin/bash", ["-c", script]) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.Environment["PATH"] = tmp.Path + ":" + Environment.GetEnvironmentVariable("PATH");
        using var bash = Process.Start(start)!;
        string output = bash.StandardOutput.ReadToEnd();
        string error = bash.StandardError.ReadToEnd();
        Assert.IsTrue(bash.WaitForExit(60_000), "bash completion did not finish");
        CollectionAssert.AreEqual(new[] { "left", "none" }, output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order().ToArray(), error);
    }

    [TestMethod]
    public void LibraryHintsNameTheFlag()
    {
        var weights = TestWeights.Random(TestWeights.Small(), seed: 86);
        using var tmp = TestPaths.NewTemp();
        string folder = TestModels.Export(weights, tmp);
        string tooLong = string.Join(",", Enumerable.Range(0, weights.Config.ContextLength + 3).Select(i => i % 50));

        var (code, _, err) = Cli("generate", "--model", folder, "--ids", tooLong, "--greedy");
        Assert.AreEqual(1, code, err);
        StringAssert.Contains(err, "--truncate left");
        Assert.DoesNotContain("GeneratorOptions", err);
        Assert.AreEqual(0, Cli("generate", "--model", folder, "--ids", tooLong, "--greedy", "--truncate", "left", "--max-new-tokens", "1").Code);

        (code, _, err) = Cli("generate", "--model", folder, "--ids", "1,2", "--provider", "coreml");
        Assert.AreEqual(1, code, err);
        StringAssert.Contains(err, "--allow-cpu-fallback");

        // With the flag, a warning names the fallback and the run goes on.
        (code, _, err) = Cli("generate", "--model", folder, "--ids", "1,2", "--max-new-tokens", "1", "--provider", "coreml", "--allow-cpu-fallback");
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(err, "warning: ");
    }

    [TestMethod]
    public void ExportChecksItsOptionsBeforeBuildingWeights()
    {
        using var tmp = TestPaths.NewTemp();
        var clock = Stopwatch.StartNew();
        // gpt2-xl takes seconds and gigabytes to initialise: these fail at once, and write nothing.
        var (code, _, err) = Cli("export", "--preset", "gpt2-xl", "--graph", "fused", "--quantize", "int4", "--block-size", "24", "--out", tmp.Sub("m"));
        Assert.AreEqual(2, code);
        Assert.AreEqual("onnxgpt export: --block-size must be a power of two (16, 32, 64, ...); found 24." + Environment.NewLine, err);
        (code, _, err) = Cli("export", "--preset", "gpt2-xl", "--graph", "fused", "--quantize", "int4", "--dtype", "fp16", "--out", tmp.Sub("m"));
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "--dtype fp16 and --quantize exclude each other");
        File.WriteAllText(tmp.Sub("README.md"), "not a folder");
        (code, _, err) = Cli("export", "--preset", "gpt2-xl", "--out", tmp.Sub("README.md"));
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "is a file; give a folder");
        Assert.IsLessThan(5.0, clock.Elapsed.TotalSeconds, "no weights were built");
        Assert.IsFalse(Directory.Exists(tmp.Sub("m")));
    }

    [TestMethod]
    public void ErrorsReadAsTheUsersWords()
    {
        // Parsing, validators between options and errors found while running: none shows .NET's wording.
        string[][] cases =
        [
            ["generate", "--model", "m", "--prompt", "x", "--seed", "-3"],
            ["generate", "--model", "m", "--prompt", "x", "--temperature", "1", "--temperature", "2"],
            ["generate", "--prompt", "x"],
            ["serve", "--model", "m", "--max-body-bytes", "0"],
            ["serve", "--model", "m", "--queue", "many"],
            ["bench", "--model", "m", "--prompt-lengths", "0,4"],
            ["train", "--data", "d.txt", "--preset", "char-tiny", "--steps", "0", "--out", "o"],
            ["inspect", "--load"],
            ["export", "--hf", "x", "--seed", "3", "--out", "o"],
        ];
        foreach (var args in cases)
        {
            var (code, _, err) = Cli(args);
            Assert.AreEqual(2, code, $"{string.Join(' ', args)}: {err}");
            Assert.AreEqual(1, err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length, $"{string.Join(' ', args)}: one line: {err}");
            Assert.DoesNotContain("Parameter '", err);
            Assert.DoesNotContain("System.", err);
            Assert.DoesNotContain("Int32", err);
            StringAssert.StartsWith(err, $"onnxgpt {args[0]}: ");
        }
    }
}

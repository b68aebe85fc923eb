#!/usr/bin/env pwsh
# One entry point for the project: build | test | demo | bench | pack | fuzz | soak.
#   dotnet tool restore && dotnet pwsh ./build.ps1 test
# Options: -Configuration Release|Debug, -Gpu (build the CLI against the CUDA/TensorRT ONNX Runtime package),
#          -Filter EXPR (test filter, passed to dotnet test), -Scale N (fuzz: N times the suite's cases, default 20).
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [ValidateSet('build', 'test', 'demo', 'bench', 'pack', 'fuzz', 'soak')]
    [string]$Target = 'build',
    [string]$Configuration = 'Release',
    [switch]$Gpu,
    [string]$Filter = '',
    [int]$Scale = 20,
    [Parameter(ValueFromRemainingArguments = $true)]
    [string[]]$Rest = @()
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$root = $PSScriptRoot
Set-Location $root
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'
$env:DOTNET_SKIP_FIRST_TIME_EXPERIENCE = '1'

$flavor = if ($Gpu) { 'Gpu' } else { 'Cpu' }
$commonArgs = @('-c', $Configuration, "-p:OnnxRuntimeFlavor=$flavor", '--nologo')

function Invoke-Checked([string]$what, [scriptblock]$block) {
    & $block
    if ($LASTEXITCODE -ne 0) { throw "$what failed (exit code $LASTEXITCODE)" }
}

function Invoke-Build {
    Invoke-Checked 'restore' { dotnet restore OnnxGpt.sln --nologo -p:OnnxRuntimeFlavor=$flavor }
    Invoke-Checked 'build' { dotnet build OnnxGpt.sln --no-restore @commonArgs }
}

# Packs the solution into $out and proves the onnxgpt tool package installs and runs: into a fresh tool path, from
# $out alone (a config file with no other source), then `onnxgpt --help`.
function Invoke-Pack([string]$out, [string[]]$packArgs) {
    if (Test-Path $out) { Remove-Item -Recurse -Force $out }
    Write-Output "pack: packing OnnxGpt.Contracts, OnnxGpt.Exporter, OnnxGpt.Runtime and the onnxgpt tool into $out (about a minute)"
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    Invoke-Checked 'pack' { dotnet pack OnnxGpt.sln @commonArgs @packArgs -o $out }
    Write-Output ("pack: packed in {0:F0} s; installing the onnxgpt tool from there into a scratch folder to check that it runs" -f $clock.Elapsed.TotalSeconds)
    $check = Join-Path ([System.IO.Path]::GetTempPath()) ("onnxgpt-tool-" + [guid]::NewGuid().ToString('N'))
    New-Item -ItemType Directory -Path $check | Out-Null
    try {
        $config = Join-Path $check 'nuget.config'
        Set-Content -Path $config -Value "<?xml version=`"1.0`" encoding=`"utf-8`"?>`n<configuration><packageSources><clear /><add key=`"local`" value=`"$out`" /></packageSources></configuration>"
        $toolPath = Join-Path $check 'tools'
        Invoke-Checked 'tool install' { dotnet tool install --tool-path $toolPath --configfile $config onnxgpt }
        $help = & (Join-Path $toolPath 'onnxgpt') --help
        if ($LASTEXITCODE -ne 0 -or -not ($help -match 'serve')) { throw "the installed onnxgpt tool did not run: $help" }
        Write-Output "packages in $out; the onnxgpt tool installs and runs"
    }
    finally {
        Remove-Item -Recurse -Force $check -ErrorAction SilentlyContinue
    }
}

function Invoke-Cli([string[]]$cliArgs) {
    $dll = Join-Path $root "Runtime/Cli/bin/$Configuration/net10.0/onnxgpt.dll"
    Invoke-Checked "onnxgpt $($cliArgs -join ' ')" { dotnet $dll @cliArgs }
}

switch ($Target) {
    'build' { Invoke-Build }

    'test' {
        Invoke-Build
        # The packages from this build, and the tool installed from them (about 20 s): CI proves they still work.
        Invoke-Pack (Join-Path $root 'artifacts/pack-check') @('--no-build')
        $results = Join-Path $root 'artifacts/test-results'
        if (Test-Path $results) { Remove-Item -Recurse -Force $results }
        $testArgs = @('test', 'Tests/OnnxGpt.Tests.csproj', '--no-build', '-c', $Configuration, '--nologo',
            '--logger', 'trx;LogFileName=tests.trx', '--logger', 'console;verbosity=normal', '--results-directory', $results)
        if ($Filter) { $testArgs += @('--filter', $Filter) }
        & dotnet @testArgs
        $testExit = $LASTEXITCODE
        $trx = Get-ChildItem -Path $results -Filter '*.trx' -Recurse -ErrorAction SilentlyContinue | Select-Object -First 1
        if (-not $trx) {
            Write-Output '0 passed, 1 failed'
            Write-Error "no test results were written (dotnet test exit code $testExit)"
            exit 1
        }
        [xml]$doc = Get-Content $trx.FullName
        # Count the per-test outcomes: the summary counters leave out inconclusive tests (e.g. GPU tests without a GPU).
        $outcomes = @($doc.TestRun.Results.UnitTestResult | ForEach-Object { $_.outcome })
        $passed = @($outcomes | Where-Object { $_ -eq 'Passed' }).Count
        $skipped = @($outcomes | Where-Object { $_ -in @('NotExecuted', 'Inconclusive') }).Count
        $failed = $outcomes.Count - $passed - $skipped
        if ($testExit -ne 0 -and $failed -eq 0) { $failed = 1 }
        $line = "$passed passed, $failed failed"
        if ($skipped -gt 0) { $line += ", $skipped skipped" }
        Write-Output $line
        if ($failed -gt 0 -or $passed -eq 0) { exit 1 }
        exit 0
    }

    'demo' {
        # The project's own model: a character-level GPT trained here on tiny-shakespeare (models/shakespeare-char,
        # see Exporter/Training/README.md), exported to ONNX and run by the runtime with a fixed seed.
        Invoke-Build
        $model = Join-Path $root 'models/shakespeare-char'
        if (-not (Test-Path (Join-Path $model 'model.onnx'))) {
            # The checkpoint beside it is enough to export the model again (into another folder: an export never
            # writes into the checkpoint it reads).
            $exported = Join-Path $root 'artifacts/shakespeare-char'
            Invoke-Cli @('export', '--hf', $model, '--out', $exported, '--force')
            $model = $exported
        }
        Invoke-Cli @('inspect', $model) | Select-Object -First 3
        Write-Output ''
        Invoke-Cli @('generate', '--model', $model, '--prompt', "JULIET:`nO Romeo, ", '--max-new-tokens', '110',
            '--temperature', '0.7', '--seed', '42')
        Write-Output ''
        # Next to it, a pretrained Llama-family model made by someone else: karpathy's tinyllamas stories260K
        # (models/stories260K, MIT), exported from its llama2.c checkpoint; greedy, so the text is the one its README gives.
        $stories = Join-Path $root 'models/stories260K'
        Invoke-Cli @('inspect', $stories) | Select-Object -First 3
        Write-Output ''
        Invoke-Cli @('generate', '--model', $stories, '--prompt', 'Once upon a time', '--max-new-tokens', '90', '--greedy')
        Write-Output ''
    }

    'bench' {
        # onnxgpt bench compare with GenAI among the engines (Runtime/Bench): our host and ONNX Runtime GenAI side by
        # side on the same folders; extra arguments pass
        # through, e.g. ./build.ps1 bench --preset gpt2-medium --variants fused --reps 1, or
        # ./build.ps1 bench --llamabench PATH/llamabench.dll to run llama.cpp in the same repetitions
        Invoke-Build
        $bench = Join-Path $root "Runtime/Bench/bin/$Configuration/net10.0/onnxgpt-bench.dll"
        $benchArgs = @('--work', (Join-Path $root 'artifacts/bench')) + $Rest
        Invoke-Checked 'bench' { dotnet $bench @benchArgs }
    }

    'fuzz' {
        # The suite's seeded mutation tests of every loader (Tests/Fuzz), with $Scale times as many cases each.
        Invoke-Build
        $env:ONNXGPT_FUZZ_SCALE = "$Scale"
        try {
            & dotnet test Tests/OnnxGpt.Tests.csproj --no-build -c $Configuration --nologo --filter 'TestCategory=Fuzz' `
                --logger 'console;verbosity=detailed' | Where-Object { $_ -match '^\s*(fuzz |Passed!|Failed!|Failed |Error Message|\s+Assert)' }
            $fuzzExit = $LASTEXITCODE
        }
        finally {
            Remove-Item Env:ONNXGPT_FUZZ_SCALE -ErrorAction SilentlyContinue
        }

        if ($fuzzExit -ne 0) { Write-Output '0 passed, 1 failed'; exit 1 }
        exit 0
    }

    'soak' {
        # Load and soak of `onnxgpt serve` on loopback (Runtime/Soak): 10,000 requests from 8 clients by default on the
        # shipped Shakespeare model; status codes, RSS and threads over time. Extra arguments pass through.
        Invoke-Build
        $soak = Join-Path $root "Runtime/Soak/bin/$Configuration/net10.0/onnxgpt-soak.dll"
        $cli = Join-Path $root "Runtime/Cli/bin/$Configuration/net10.0/onnxgpt.dll"
        $soakArgs = @('--cli', $cli, '--model', (Join-Path $root 'models/shakespeare-char')) + $Rest
        Invoke-Checked 'soak' { dotnet $soak @soakArgs }
    }

    'pack' {
        # Release packages: deterministic (source paths mapped, Source Link), symbols as .snupkg, package READMEs.
        Invoke-Pack (Join-Path $root 'artifacts/packages') @('-p:ContinuousIntegrationBuild=true')
    }
}

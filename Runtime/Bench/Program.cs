using OnnxGpt.Cli.Benchmarking;

namespace OnnxGpt.Bench;

/// <summary>
/// <c>onnxgpt-bench ARGS</c> is <c>onnxgpt bench compare ARGS</c> with ONNX Runtime GenAI among the engines, so the
/// side-by-side comparison has one front-end, one set of options and one help text (<c>onnxgpt-bench --help</c>).
/// Arguments that start with <c>bench</c> reach the command line as they are (the comparison's child processes, and
/// <c>onnxgpt-bench bench --model DIR</c> for the single-model benchmark). <c>onnxgpt-bench load ...</c> is the load
/// benchmark of <c>onnxgpt serve</c> (<see cref="Load.LoadBench"/>), which lives here because its chart brings
/// SkiaSharp, which the tool should not ship. <c>onnxgpt-bench engine ...</c> times the batch engine in process
/// (<see cref="Engine.EngineBench"/>).
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args is ["load", .. var rest])
        {
            try
            {
                return Load.LoadBench.Run(rest);
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"onnxgpt-bench load failed: {e}");
                return 1;
            }
        }

        if (args is ["engine", .. var engineArgs])
        {
            try
            {
                return Engine.EngineBench.Run(engineArgs);
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"onnxgpt-bench engine failed: {e}");
                return 1;
            }
        }

        BenchEngines.Register("genai", (folder, _) => new GenAiEngine(folder));
        return OnnxGpt.Cli.Program.Run(args is ["bench", ..] ? args : ["bench", "compare", .. args], Console.Out, Console.Error);
    }
}

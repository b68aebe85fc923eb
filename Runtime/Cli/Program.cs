namespace OnnxGpt.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        Console.WriteLine("onnxgpt");
        return 0;
    }
}

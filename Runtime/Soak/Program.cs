using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace OnnxGpt.Soak;

/// <summary>
/// Starts <c>onnxgpt serve</c> as a child process on a loopback port, sends N requests from M clients (a fixed,
/// seeded mix of chat, completion, streamed, listing and deliberately bad requests, each with the status it must
/// get), and samples the server's resident set and thread count once a second. Prints the status codes, RSS and
/// threads over time, and RSS growth after warm-up (the first tenth of the requests). Loopback only; bounded in
/// count and time; stops the server at the end.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        string? cli = Arg(args, "--cli"), model = Arg(args, "--model");
        if (cli is null || model is null)
        {
            Console.Error.WriteLine("usage: onnxgpt-soak --cli PATH/onnxgpt.dll --model DIR [--requests 10000] [--clients 8] [--max-tokens 4] [--minutes 9]");
            return 2;
        }

        int requests = int.Parse(Arg(args, "--requests") ?? "10000", CultureInfo.InvariantCulture);
        int clients = int.Parse(Arg(args, "--clients") ?? "8", CultureInfo.InvariantCulture);
        int maxTokens = int.Parse(Arg(args, "--max-tokens") ?? "4", CultureInfo.InvariantCulture);
        var deadline = TimeSpan.FromMinutes(double.Parse(Arg(args, "--minutes") ?? "9", CultureInfo.InvariantCulture));

        int port = FreePort();
        using var server = Process.Start(new ProcessStartInfo("dotnet", [cli, "serve", "--model", model, "--urls", $"http://127.0.0.1:{port}",
            "--parallel", "4", "--queue", "256", "--quiet"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var serverOutput = new StringBuilder();
        server.OutputDataReceived += (_, e) => { lock (serverOutput) { serverOutput.AppendLine(e.Data); } };
        server.ErrorDataReceived += (_, e) => { lock (serverOutput) { serverOutput.AppendLine(e.Data); } };
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };
            await WaitUntilServingAsync(http, server);
            return await RunAsync(http, server, requests, clients, maxTokens, deadline, serverOutput);
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill(entireProcessTree: true);
                server.WaitForExit(10_000);
            }
        }
    }

    private sealed record Kind(string Name, HttpMethod Method, string Path, string? Body, int Expected);

    private static IReadOnlyList<Kind> Kinds(int maxTokens) =>
    [
        new("chat", HttpMethod.Post, "/v1/chat/completions", $$"""{"model":"m","messages":[{"role":"user","content":"ROMEO:"}],"max_tokens":{{maxTokens}},"seed":1}""", 200),
        new("chat-stream", HttpMethod.Post, "/v1/chat/completions", $$"""{"model":"m","messages":[{"role":"user","content":"JULIET:"}],"max_tokens":{{maxTokens}},"stream":true}""", 200),
        new("completion", HttpMethod.Post, "/v1/completions", $$"""{"model":"m","prompt":"First Citizen:\n","max_tokens":{{maxTokens}},"temperature":0}""", 200),
        new("models", HttpMethod.Get, "/v1/models", null, 200),
        new("bad-json", HttpMethod.Post, "/v1/completions", """{"model":"m","prompt":"\ud83d"}""", 400),
        new("bad-field", HttpMethod.Post, "/v1/completions", """{"model":"m","prompt":"x","temperature":"hot"}""", 400),
        new("unknown-model", HttpMethod.Post, "/v1/completions", """{"model":"other","prompt":"x"}""", 404),
        new("unknown-url", HttpMethod.Get, "/v2/nothing", null, 404),
    ];

    private static async Task<int> RunAsync(HttpClient http, Process server, int requests, int clients, int maxTokens, TimeSpan deadline, StringBuilder serverOutput)
    {
        // The model's id is the folder name: ask the server, then put it in the bodies.
        string listing = await http.GetStringAsync("/v1/models");
        string id = listing.Split("\"id\":\"")[1].Split('"')[0];
        var kinds = Kinds(maxTokens).Select(k => k with { Body = k.Body?.Replace("\"model\":\"m\"", $"\"model\":\"{id}\"", StringComparison.Ordinal) }).ToList();

        var statuses = new Dictionary<(string, int), int>();
        int unexpected = 0, sent = 0, done = 0;
        var samples = new List<(double Seconds, int Done, long Rss, int Threads)>();
        var clock = Stopwatch.StartNew();
        using var stop = new CancellationTokenSource(deadline);
        var sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested && Volatile.Read(ref done) < requests)
            {
                samples.Add((clock.Elapsed.TotalSeconds, Volatile.Read(ref done), Rss(server), Threads(server)));
                try
                {
                    await Task.Delay(1000, stop.Token);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        });

        var latencies = new List<double>();
        async Task Client()
        {
            while (!stop.IsCancellationRequested)
            {
                int n = Interlocked.Increment(ref sent) - 1;
                if (n >= requests)
                {
                    return;
                }

                var kind = kinds[n % kinds.Count];
                using var request = new HttpRequestMessage(kind.Method, kind.Path);
                if (kind.Body is not null)
                {
                    request.Content = new StringContent(kind.Body, Encoding.UTF8, "application/json");
                }

                var start = Stopwatch.GetTimestamp();
                int status;
                try
                {
                    using var response = await http.SendAsync(request, stop.Token);
                    await response.Content.ReadAsStringAsync(stop.Token);
                    status = (int)response.StatusCode;
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    status = 0;
                }

                lock (statuses)
                {
                    statuses[(kind.Name, status)] = statuses.GetValueOrDefault((kind.Name, status)) + 1;
                    latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    if (status != kind.Expected)
                    {
                        unexpected++;
                    }
                }

                Interlocked.Increment(ref done);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(Client)));
        await stop.CancelAsync();
        await sampler;
        samples.Add((clock.Elapsed.TotalSeconds, done, Rss(server), Threads(server)));
        bool stillServing = (await http.GetAsync("/v1/models")).IsSuccessStatusCode;

        Console.WriteLine($"onnxgpt serve soak: {done} requests from {clients} clients in {clock.Elapsed.TotalSeconds:F0} s " +
            $"({done / clock.Elapsed.TotalSeconds:F0} requests/s), max_tokens {maxTokens}, parallel 4");
        Console.WriteLine();
        Console.WriteLine("| request | expected | answered |");
        Console.WriteLine("|---|---|---|");
        foreach (var kind in kinds)
        {
            var got = statuses.Where(s => s.Key.Item1 == kind.Name).Select(s => $"{s.Key.Item2} × {s.Value}");
            Console.WriteLine($"| {kind.Name} | {kind.Expected} | {string.Join(", ", got)} |");
        }

        latencies.Sort();
        Console.WriteLine();
        Console.WriteLine($"latency: median {latencies[latencies.Count / 2]:F0} ms, p99 {latencies[(int)(latencies.Count * 0.99)]:F0} ms, max {latencies[^1]:F0} ms");
        Console.WriteLine();
        Console.WriteLine("| time (s) | requests done | RSS (MiB) | threads |");
        Console.WriteLine("|---|---|---|---|");
        int step = Math.Max(1, samples.Count / 12);
        for (int i = 0; i < samples.Count; i++)
        {
            if (i % step == 0 || i == samples.Count - 1)
            {
                var s = samples[i];
                Console.WriteLine($"| {s.Seconds:F0} | {s.Done} | {s.Rss / 1048576.0:F1} | {s.Threads} |");
            }
        }

        // Warm-up: the first tenth of the requests. The second half alone is a leak check that no warm-up choice sways.
        var warm = samples.FirstOrDefault(s => s.Done >= requests / 10);
        var half = samples.FirstOrDefault(s => s.Done >= requests / 2);
        var last = samples[^1];
        double growth = warm.Rss > 0 ? 100.0 * (last.Rss - warm.Rss) / warm.Rss : double.NaN;
        double secondHalf = half.Rss > 0 ? 100.0 * (last.Rss - half.Rss) / half.Rss : double.NaN;
        long peak = samples.Max(s => s.Rss);
        Console.WriteLine();
        Console.WriteLine($"RSS after warm-up ({warm.Done} requests): {warm.Rss / 1048576.0:F1} MiB; at the end: {last.Rss / 1048576.0:F1} MiB " +
            $"(growth {growth:F1}%; over the second half, from {half.Done} requests: {secondHalf:F1}%); peak {peak / 1048576.0:F1} MiB; " +
            $"threads {samples.Min(s => s.Threads)}..{samples.Max(s => s.Threads)}");
        Console.WriteLine($"unexpected statuses: {unexpected}; still serving after the run: {(stillServing ? "yes" : "no")}");
        bool ok = unexpected == 0 && stillServing && done == requests && growth < 10;
        if (!ok)
        {
            lock (serverOutput)
            {
                Console.WriteLine("server output:");
                Console.WriteLine(serverOutput.ToString());
            }
        }

        return ok ? 0 : 1;
    }

    private static async Task WaitUntilServingAsync(HttpClient http, Process server)
    {
        for (int i = 0; i < 600; i++)
        {
            if (server.HasExited)
            {
                throw new InvalidOperationException($"onnxgpt serve exited with {server.ExitCode} before serving.");
            }

            try
            {
                if ((await http.GetAsync("/v1/models")).IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100);
        }

        throw new TimeoutException("onnxgpt serve did not start within 60 s.");
    }

    private static long Rss(Process p)
    {
        try
        {
            p.Refresh();
            return p.WorkingSet64;
        }
        catch (InvalidOperationException)
        {
            return 0;
        }
    }

    private static int Threads(Process p)
    {
        try
        {
            p.Refresh();
            return p.Threads.Count;
        }
        catch (InvalidOperationException)
        {
            return 0;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}

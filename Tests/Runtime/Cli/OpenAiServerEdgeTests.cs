using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using OnnxGpt.Cli;
using OnnxGpt.Cli.Serving;
using OnnxGpt.Exporter.Onnx.Proto;
using OnnxGpt.Runtime.Chat;
using OnnxGpt.Runtime.Model;
using OnnxGpt.Tests.Support;

namespace OnnxGpt.Tests.Runtime.Cli;

/// <summary>
/// The server's edges: hostile bytes in a body, a trickled body, Kestrel's own refusals, a model whose logits are NaN,
/// the log lines, and a busy port. Every answer is OpenAI's error shape with a status that says whose fault it is.
/// </summary>
[TestClass]
public sealed class OpenAiServerEdgeTests
{
    private const string ModelId = "tiny";

    private static TempFolder? s_tmp;
    private static GptModel? s_model;
    private static GptModel? s_nanModel;
    private static OnnxGptChatClient? s_client;
    private static OnnxGptChatClient? s_nanClient;
    private static OpenAiServer? s_server;
    private static OpenAiServer? s_nanServer;
    private static StringWriter? s_log;

    public TestContext TestContext { get; set; } = null!;

    private CancellationToken Cancel => TestContext.CancellationToken;

    [ClassInitialize]
    public static async Task Initialize(TestContext context)
    {
        s_tmp = new TempFolder();
        string folder = ChatModels.ExportTinyGpt2(s_tmp);
        s_model = GptModel.Load(folder);
        s_client = new OnnxGptChatClient(s_model, new OnnxGptChatClientOptions { ModelId = ModelId });
        s_log = new StringWriter();
        var options = new ServerOptions { Urls = "http://127.0.0.1:0", BodyGracePeriod = TimeSpan.FromSeconds(2) };
        s_server = await OpenAiServer.StartAsync(s_client, options, s_log, cancellationToken: context.CancellationToken);

        // The same model with a NaN in its final layer norm: every logit is NaN.
        string nan = ChatModels.ExportTinyGpt2(s_tmp, "nan");
        string path = Path.Combine(nan, "model.onnx");
        var proto = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        var gain = proto.Graph.Initializer.First(t => t.Name == "transformer.ln_f.weight");
        var bytes = gain.RawData.ToByteArray();
        BitConverter.GetBytes(float.NaN).CopyTo(bytes, 0);
        gain.RawData = ByteString.CopyFrom(bytes);
        File.WriteAllBytes(path, proto.ToByteArray());
        s_nanModel = GptModel.Load(nan);
        s_nanClient = new OnnxGptChatClient(s_nanModel, new OnnxGptChatClientOptions { ModelId = ModelId });
        s_nanServer = await OpenAiServer.StartAsync(s_nanClient, options, TextWriter.Null, cancellationToken: context.CancellationToken);
    }

    [ClassCleanup]
    public static async Task Cleanup()
    {
        foreach (var server in new[] { s_server, s_nanServer })
        {
            if (server is not null)
            {
                await server.DisposeAsync();
            }
        }

        s_client?.Dispose();
        s_nanClient?.Dispose();
        s_model?.Dispose();
        s_nanModel?.Dispose();
        s_tmp?.Dispose();
    }

    /// <summary>Sends raw bytes on a new connection and returns the status and the body of the answer.</summary>
    private async Task<(int Status, string Body)> RawAsync(OpenAiServer server, byte[] request, TimeSpan? pace = null)
    {
        var uri = new Uri(server.Urls[0]);
        using var socket = new TcpClient();
        await socket.ConnectAsync(IPAddress.Loopback, uri.Port, Cancel);
        var stream = socket.GetStream();
        if (pace is { } delay)
        {
            foreach (var b in request)
            {
                try
                {
                    await stream.WriteAsync(new[] { b }, Cancel);
                }
                catch (IOException)
                {
                    break;   // the server gave up on us, as it should
                }

                await Task.Delay(delay, Cancel);
                if (stream.DataAvailable)
                {
                    break;
                }
            }
        }
        else
        {
            await stream.WriteAsync(request, Cancel);
        }

        using var reader = new StreamReader(stream, Encoding.UTF8);
        string response = await reader.ReadToEndAsync(Cancel).WaitAsync(TimeSpan.FromSeconds(30), Cancel);
        int space = response.IndexOf(' ');
        Assert.IsGreaterThan(0, space, $"no HTTP response: '{response}'");
        return Split(response);
    }

    /// <summary>The status and the body of a raw response, its chunked transfer encoding undone.</summary>
    private static (int Status, string Body) Split(string response)
    {
        int status = int.Parse(response.AsSpan(response.IndexOf(' ') + 1, 3));
        int bodyAt = response.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        string head = response[..bodyAt], body = response[(bodyAt + 4)..];
        if (!head.Contains("Transfer-Encoding: chunked", StringComparison.OrdinalIgnoreCase))
        {
            return (status, body);
        }

        var text = new StringBuilder();
        int at = 0;
        while (at < body.Length)
        {
            int eol = body.IndexOf("\r\n", at, StringComparison.Ordinal);
            int size = Convert.ToInt32(body[at..eol], 16);
            if (size == 0)
            {
                break;
            }

            text.Append(body, eol + 2, size);
            at = eol + 2 + size + 2;
        }

        return (status, text.ToString());
    }

    private static byte[] Post(string path, byte[] body) =>
        [.. Encoding.ASCII.GetBytes($"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n"), .. body];

    private static string ErrorMessage(string body, string expectedType = "invalid_request_error")
    {
        using var json = JsonDocument.Parse(body);
        var error = json.RootElement.GetProperty("error");
        Assert.AreEqual(expectedType, error.GetProperty("type").GetString(), body);
        return error.GetProperty("message").GetString()!;
    }

    [TestMethod]
    [DataRow("""{"model":"tiny","prompt":"\ud83d"}""", "a string at $.prompt is not valid Unicode")]
    [DataRow("""{"model":"tiny","messages":[{"role":"user","content":"x\udc00"}]}""", "a string at $.messages[0].content is not valid Unicode")]
    [DataRow("""{"model":"tiny","prompt":"a","prompt":"b"}""", "key 'prompt' appears twice")]
    public async Task HostileJsonIs400NamingWhere(string json, string expected)
    {
        string path = json.Contains("messages") ? "/v1/chat/completions" : "/v1/completions";
        var (status, body) = await RawAsync(s_server!, Post(path, Encoding.UTF8.GetBytes(json)));
        Assert.AreEqual(400, status, body);
        StringAssert.Contains(ErrorMessage(body), expected);
    }

    [TestMethod]
    public async Task InvalidUtf8InABodyIs400()
    {
        byte[] json = [.. Encoding.UTF8.GetBytes("{\"model\":\"tiny\",\"prompt\":\"ab"), 0xFF, 0xFE, .. Encoding.UTF8.GetBytes("\"}")];
        var (status, body) = await RawAsync(s_server!, Post("/v1/completions", json));
        Assert.AreEqual(400, status, body);
        StringAssert.Contains(ErrorMessage(body), "not valid UTF-8 (the first invalid byte is at offset 28)");
    }

    [TestMethod]
    public async Task ATrickledBodyIs408()
    {
        byte[] body = Encoding.UTF8.GetBytes("""{"model":"tiny","prompt":"Once upon a time there was a very slow client"}""");
        byte[] head = Encoding.ASCII.GetBytes($"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n\r\n");
        var uri = new Uri(s_server!.Urls[0]);
        using var socket = new TcpClient();
        await socket.ConnectAsync(IPAddress.Loopback, uri.Port, Cancel);
        var stream = socket.GetStream();
        await stream.WriteAsync(head, Cancel);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (status, text) = await RawAfterTrickleAsync(stream, body);
        Assert.AreEqual(408, status, text);
        StringAssert.Contains(ErrorMessage(text), "the request body arrived too slowly");
        Assert.IsLessThan(20, clock.Elapsed.TotalSeconds);
    }

    private async Task<(int, string)> RawAfterTrickleAsync(NetworkStream stream, byte[] body)
    {
        for (int i = 0; i < body.Length && !stream.DataAvailable; i++)
        {
            try
            {
                await stream.WriteAsync(body.AsMemory(i, 1), Cancel);
            }
            catch (IOException)
            {
                break;
            }

            await Task.Delay(400, Cancel);
        }

        using var reader = new StreamReader(stream, Encoding.UTF8);
        string response = "";
        var buffer = new char[8192];
        while (!response.Contains("\r\n0\r\n", StringComparison.Ordinal) && !response.EndsWith("}}", StringComparison.Ordinal))
        {
            int n = await reader.ReadAsync(buffer, Cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(20), Cancel);
            if (n == 0)
            {
                break;
            }

            response += new string(buffer, 0, n);
        }

        return Split(response);
    }

    [TestMethod]
    public async Task KestrelsOwnRefusalsHaveOpenAiBodies()
    {
        var (status, body) = await RawAsync(s_server!, Encoding.ASCII.GetBytes("GET /" + new string('a', 20000) + " HTTP/1.1\r\nHost: x\r\n\r\n"));
        Assert.AreEqual(414, status, body);
        StringAssert.Contains(ErrorMessage(body), "URL is longer");

        (status, body) = await RawAsync(s_server!, Encoding.ASCII.GetBytes("GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + new string('b', 40000) + "\r\n\r\n"));
        Assert.AreEqual(431, status, body);
        StringAssert.Contains(ErrorMessage(body), "headers are larger");

        (status, body) = await RawAsync(s_server!, Encoding.ASCII.GetBytes("NOT AN HTTP REQUEST\r\n\r\n"));
        Assert.AreEqual(400, status, body);
        StringAssert.Contains(ErrorMessage(body), "malformed HTTP");

        // And the server still serves.
        (status, body) = await RawAsync(s_server!, Encoding.ASCII.GetBytes("GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        Assert.AreEqual(200, status, body);
        StringAssert.Contains(body, "\"object\":\"list\"");
    }

    [TestMethod]
    public async Task NaNLogitsAreTheServersFaultNotThePrompts()
    {
        var (status, body) = await RawAsync(s_nanServer!, Post("/v1/completions", Encoding.UTF8.GetBytes("""{"model":"tiny","prompt":"Hello","max_tokens":2}""")));
        Assert.AreEqual(500, status, body);
        StringAssert.Contains(ErrorMessage(body, "server_error"), "the model produced unusable output: Logit 0 of the row is NaN");
        using var json = JsonDocument.Parse(body);
        Assert.AreEqual(JsonValueKind.Null, json.RootElement.GetProperty("error").GetProperty("param").ValueKind, "not blamed on the prompt");
        Assert.AreEqual("model_output_invalid", json.RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [TestMethod]
    public async Task EveryRequestIsLoggedWithTheReasonOfItsError()
    {
        await RawAsync(s_server!, Encoding.ASCII.GetBytes("GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        await RawAsync(s_server!, Post("/v1/completions", Encoding.UTF8.GetBytes("""{"model":"tiny"}""")));
        await RawAsync(s_server!, Encoding.ASCII.GetBytes("GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        string log = s_log!.ToString();
        StringAssert.Matches(log, new System.Text.RegularExpressions.Regex(@"GET /v1/models 200 in \d+ ms"));
        StringAssert.Matches(log, new System.Text.RegularExpressions.Regex(@"POST /v1/completions 400 in \d+ ms: prompt is required"));
        StringAssert.Matches(log, new System.Text.RegularExpressions.Regex(@"GET /nowhere 404 in \d+ ms: unknown request URL"));
    }

    [TestMethod]
    public void ABusyPortIsReportedOnce()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(["serve", "--model", s_model!.Folder, "--urls", $"http://127.0.0.1:{port}"], stdout, stderr);
        Assert.AreEqual(1, code);
        string all = stdout + stderr.ToString();
        int count = System.Text.RegularExpressions.Regex.Matches(all, "address already in use", System.Text.RegularExpressions.RegexOptions.IgnoreCase).Count;
        Assert.AreEqual(1, count, all);
    }
}

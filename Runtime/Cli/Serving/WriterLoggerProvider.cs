using Microsoft.Extensions.Logging;

namespace OnnxGpt.Cli.Serving;

/// <summary>Logs one line per message at or above a level to a (synchronized) writer: the server's console output.</summary>
internal sealed class WriterLoggerProvider(TextWriter writer, LogLevel minimum) : ILoggerProvider
{
    private readonly TextWriter _writer = TextWriter.Synchronized(writer);

    public ILogger CreateLogger(string categoryName) => new WriterLogger(_writer, minimum);

    public void Dispose()
    {
    }

    private sealed class WriterLogger(TextWriter writer, LogLevel minimum) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum && logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            string level = logLevel switch
            {
                LogLevel.Warning => "warning: ",
                LogLevel.Error or LogLevel.Critical => "error: ",
                _ => "",
            };
            writer.WriteLine(level + formatter(state, exception) + (exception is null ? "" : $" ({exception.GetType().Name}: {exception.Message})"));
        }
    }
}

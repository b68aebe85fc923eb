namespace OnnxGpt.Exporter;

/// <summary>What an export wrote.</summary>
public sealed record ExportResult(string Folder, string ModelPath, string? ExternalDataPath, long ModelBytes, long ExternalDataBytes, TimeSpan Elapsed);

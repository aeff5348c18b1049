using System.Text.Json;

namespace MeshGuard.FlowLog;

/// <summary>Reads the records of a flow log directory in order, oldest first; torn or unparsable lines are skipped.</summary>
public static class FlowLogReader
{
    public static IEnumerable<JsonElement> Records(string directory)
    {
        foreach (var file in FlowLogFormat.Files(directory))
        {
            foreach (var record in Records(File.ReadAllBytes(file)))
            {
                yield return record;
            }
        }
    }

    public static IEnumerable<JsonElement> Records(byte[] bytes)
    {
        foreach (var (_, line, complete) in FlowLogFormat.Lines(bytes))
        {
            if (!complete)
            {
                yield break;
            }
            JsonElement? record = null;
            try
            {
                using var document = JsonDocument.Parse(line);
                record = document.RootElement.Clone();
            }
            catch (JsonException)
            {
            }
            if (record is { } r)
            {
                yield return r;
            }
        }
    }

    public static string? Text(this JsonElement record, string name) =>
        record.ValueKind == JsonValueKind.Object && record.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    public static long Number(this JsonElement record, string name) =>
        record.ValueKind == JsonValueKind.Object && record.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number) ? number : 0;
}

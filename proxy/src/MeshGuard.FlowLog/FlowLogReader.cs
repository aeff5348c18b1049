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

    /// <summary>The string field <paramref name="name"/>, or null when it is absent, not a string, or not text (a lone escaped surrogate).</summary>
    public static string? Text(this JsonElement record, string name)
    {
        if (record.ValueKind != JsonValueKind.Object || !record.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.String)
        {
            return null;
        }
        try
        {
            return value.GetString();
        }
        catch (InvalidOperationException)
        {
            // "\ud800" alone is valid JSON but no string (found by fuzzing): a log holding it was changed.
            return null;
        }
    }

    public static long Number(this JsonElement record, string name) =>
        record.ValueKind == JsonValueKind.Object && record.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number) ? number : 0;
}

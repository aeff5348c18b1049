using System.Globalization;
using System.Text.Json;

namespace MeshGuard.FlowStore;

/// <summary>
/// The fields of a flow-log line stored beside the verbatim line: its seq, and what a reviewer filters on: when,
/// what kind of record, who called whom, which service, the decision with its policy and rule, the request and its
/// answer. A field the line lacks (a checkpoint has no caller) or holds as another JSON type is null (seq: -1).
/// </summary>
public readonly record struct FlowLineColumns(
    long Seq, DateTimeOffset? Time, string Kind, string? Direction, string? SourceId, string? DestId, string? Service,
    string? Decision, string? Policy, string? Rule, string? Method, string? Path, int? Status, string? RequestId)
{
    /// <summary>The columns of one line (already checked to be a record of the chain).</summary>
    public static FlowLineColumns Read(ReadOnlySpan<byte> line)
    {
        long seq = -1;
        DateTimeOffset? time = null;
        string kind = "";
        string? direction = null, source = null, dest = null, service = null, decision = null, policy = null, rule = null, method = null, path = null, requestId = null;
        int? status = null;
        var reader = new Utf8JsonReader(line);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return new FlowLineColumns(seq, null, kind, null, null, null, null, null, null, null, null, null, null, null);
        }
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("seq"u8))
            {
                reader.Read();
                seq = reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var n) ? n : -1;
                reader.Skip();
            }
            else if (reader.ValueTextEquals("time"u8))
            {
                time = Text(ref reader) is { } t && DateTimeOffset.TryParse(t, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed) ? parsed : null;
            }
            else if (reader.ValueTextEquals("kind"u8))
            {
                kind = Text(ref reader) ?? "";
            }
            else if (reader.ValueTextEquals("direction"u8))
            {
                direction = Text(ref reader);
            }
            else if (reader.ValueTextEquals("source_id"u8))
            {
                source = Text(ref reader);
            }
            else if (reader.ValueTextEquals("dest_id"u8))
            {
                dest = Text(ref reader);
            }
            else if (reader.ValueTextEquals("dest_service"u8))
            {
                service = Text(ref reader);
            }
            else if (reader.ValueTextEquals("decision"u8))
            {
                decision = Text(ref reader);
            }
            else if (reader.ValueTextEquals("policy"u8))
            {
                policy = Text(ref reader);
            }
            else if (reader.ValueTextEquals("rule"u8))
            {
                rule = Text(ref reader);
            }
            else if (reader.ValueTextEquals("method"u8))
            {
                method = Text(ref reader);
            }
            else if (reader.ValueTextEquals("path"u8))
            {
                path = Text(ref reader);
            }
            else if (reader.ValueTextEquals("request_id"u8))
            {
                requestId = Text(ref reader);
            }
            else if (reader.ValueTextEquals("status"u8))
            {
                reader.Read();
                status = reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var s) ? s : null;
                reader.Skip();
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        return new FlowLineColumns(seq, time, kind, direction, source, dest, service, decision, policy, rule, method, path, status, requestId);
    }

    private static string? Text(ref Utf8JsonReader reader)
    {
        reader.Read();
        if (reader.TokenType == JsonTokenType.String)
        {
            return reader.GetString();
        }
        reader.Skip();
        return null;
    }
}

using System.Text.Json;

namespace MeshGuard.FlowLog;

/// <summary>
/// What the chain needs of a line, read without building a document: its seq, whether it is a signed record
/// (start or checkpoint) and where its prev hash sits. Serves the sidecar's upload reader and the control
/// plane's check of what arrives, both of which look at every line.
/// </summary>
public readonly record struct FlowLineHead(long Seq, bool IsSignedRecord, int PrevStart, int PrevLength)
{
    public ReadOnlySpan<byte> Prev(ReadOnlySpan<byte> line) => line.Slice(PrevStart, PrevLength);

    /// <summary>False for a line that is not a JSON object with a numeric seq (a changed or torn line).</summary>
    public static bool TryRead(ReadOnlySpan<byte> line, out FlowLineHead head)
    {
        head = default;
        long seq = -1;
        var signed = false;
        int prevStart = 0, prevLength = 0;
        try
        {
            var reader = new Utf8JsonReader(line);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("seq"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out seq))
                    {
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("kind"u8))
                {
                    reader.Read();
                    signed = reader.TokenType == JsonTokenType.String && (reader.ValueTextEquals("checkpoint"u8) || reader.ValueTextEquals("start"u8));
                }
                else if (reader.ValueTextEquals("prev"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String && !reader.ValueIsEscaped)
                    {
                        prevStart = (int)reader.TokenStartIndex + 1;
                        prevLength = reader.ValueSpan.Length;
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }
        catch (JsonException)
        {
            return false;
        }
        if (seq < 0)
        {
            return false;
        }
        head = new FlowLineHead(seq, signed, prevStart, prevLength);
        return true;
    }
}

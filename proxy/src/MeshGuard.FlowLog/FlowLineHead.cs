using System.Text.Json;

namespace MeshGuard.FlowLog;

/// <summary>
/// What the chain needs of a line, read without building a document: its seq, whether it is a signed record
/// (start or checkpoint) and where its prev hash sits. Serves the sidecar's upload reader and the control
/// plane's check of what arrives, both of which look at every line.
/// </summary>
public readonly record struct FlowLineHead(long Seq, bool IsSignedRecord, int PrevStart, int PrevLength, int PartyStart = -1, int PartyLength = 0, bool IsFlow = false)
{
    public ReadOnlySpan<byte> Prev(ReadOnlySpan<byte> line) => line.Slice(PrevStart, PrevLength);

    /// <summary>
    /// The identity whose log this line claims to be part of: the workload of a signed record, the callee of an
    /// inbound flow, the caller of an outbound one; empty where the line names none (a gap record, or a flow
    /// record missing the field or with an escaped value).
    /// </summary>
    public ReadOnlySpan<byte> LocalParty(ReadOnlySpan<byte> line) => PartyStart < 0 ? default : line.Slice(PartyStart, PartyLength);

    /// <summary>False for a line that is not a JSON object with a numeric seq (a changed or torn line).</summary>
    public static bool TryRead(ReadOnlySpan<byte> line, out FlowLineHead head)
    {
        head = default;
        long seq = -1;
        var signed = false;
        var flow = false;
        bool? inbound = null;
        int prevStart = 0, prevLength = 0;
        (int Start, int Length) source = (-1, 0), dest = (-1, 0), workload = (-1, 0);
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
                    flow = reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("flow"u8);
                }
                else if (reader.ValueTextEquals("direction"u8))
                {
                    reader.Read();
                    inbound = reader.TokenType == JsonTokenType.String ? reader.ValueTextEquals("inbound"u8) : null;
                }
                else if (reader.ValueTextEquals("source_id"u8))
                {
                    source = StringAt(ref reader);
                }
                else if (reader.ValueTextEquals("dest_id"u8))
                {
                    dest = StringAt(ref reader);
                }
                else if (reader.ValueTextEquals("workload"u8))
                {
                    workload = StringAt(ref reader);
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
        (int Start, int Length) party = signed ? workload : flow && inbound is { } i ? (i ? dest : source) : (-1, 0);
        head = new FlowLineHead(seq, signed, prevStart, prevLength, party.Start, party.Length, flow);
        return true;
    }

    // Where an unescaped string value sits in the line; (-1, 0) for anything else.
    private static (int Start, int Length) StringAt(ref Utf8JsonReader reader)
    {
        reader.Read();
        return reader.TokenType == JsonTokenType.String && !reader.ValueIsEscaped ? ((int)reader.TokenStartIndex + 1, reader.ValueSpan.Length) : (-1, 0);
    }
}

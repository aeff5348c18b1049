using System.Buffers;
using System.Text.Json;
using MeshGuard.FlowLog;

namespace MeshGuard.FlowLog.Tests;

/// <summary>The writer's own JSON encoding of a flow record: always valid JSON that reads back to what went in.</summary>
public sealed class FlowLineEncoderTests
{
    private static readonly byte[] Prev = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"u8.ToArray();

    private static JsonElement EncodeAndParse(in FlowRecord record, long seq = 7)
    {
        var buffer = new ArrayBufferWriter<byte>();
        FlowLineEncoder.Encode(buffer, record, seq, Prev);
        Assert.DoesNotContain((byte)'\n', buffer.WrittenSpan.ToArray());
        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();
    }

    [Fact]
    public void EveryFieldReadsBackUnderItsDesignName()
    {
        var time = new DateTimeOffset(2026, 11, 23, 20, 42, 11, TimeSpan.Zero).AddTicks(233475);
        var json = EncodeAndParse(new FlowRecord
        {
            Time = time,
            DurationMs = 4.9031,
            Direction = FlowDirection.Outbound,
            RequestId = "f88578c9d3244518b122c1c7d484fabc",
            SourceId = "spiffe://mesh.local/ns/shop/sa/orders",
            SourceAddr = "127.0.0.1:53412",
            DestId = "spiffe://mesh.local/ns/shop/sa/payments",
            DestService = "payments",
            DestPort = 8443,
            Protocol = "HTTP/1.1",
            Method = "GET",
            Path = "/refunds/17",
            Status = 403,
            Decision = "deny",
            AuditDecision = "allow",
            AuditPolicy = "shop/payments-audit",
            AuditRule = "orders",
            Policy = "shop/payments-callers",
            Rule = "frontend",
            BytesIn = 12,
            BytesOut = 1L << 40,
            TraceId = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            TlsVersion = "TLSv1.3",
        });

        Assert.Equal("flow", json.Text("kind"));
        Assert.Equal(time, json.GetProperty("time").GetDateTimeOffset());
        Assert.Equal("2026-11-23T20:42:11.0233475Z", json.Text("time"));
        Assert.Equal(4.903, json.GetProperty("duration_ms").GetDouble());
        Assert.Equal("outbound", json.Text("direction"));
        Assert.Equal("f88578c9d3244518b122c1c7d484fabc", json.Text("request_id"));
        Assert.Equal("spiffe://mesh.local/ns/shop/sa/orders", json.Text("source_id"));
        Assert.Equal("127.0.0.1:53412", json.Text("source_addr"));
        Assert.Equal("spiffe://mesh.local/ns/shop/sa/payments", json.Text("dest_id"));
        Assert.Equal("payments", json.Text("dest_service"));
        Assert.Equal(8443, json.Number("dest_port"));
        Assert.Equal("HTTP/1.1", json.Text("protocol"));
        Assert.Equal("GET", json.Text("method"));
        Assert.Equal("/refunds/17", json.Text("path"));
        Assert.Equal(403, json.Number("status"));
        Assert.Equal("deny", json.Text("decision"));
        Assert.Equal("allow", json.Text("audit_decision"));
        Assert.Equal("shop/payments-audit", json.Text("audit_policy"));
        Assert.Equal("orders", json.Text("audit_rule"));
        Assert.Equal("shop/payments-callers", json.Text("policy"));
        Assert.Equal("frontend", json.Text("rule"));
        Assert.Equal(12, json.Number("bytes_in"));
        Assert.Equal(1L << 40, json.Number("bytes_out"));
        Assert.Equal("4bf92f3577b34da6a3ce929d0e0e4736", json.Text("trace_id"));
        Assert.Equal("TLSv1.3", json.Text("tls_version"));
        Assert.Equal(7, json.Number("seq"));
        Assert.Equal(System.Text.Encoding.ASCII.GetString(Prev), json.Text("prev"));
    }

    [Fact]
    public void AbsentFieldsAreLeftOutRatherThanWrittenAsNull()
    {
        var json = EncodeAndParse(new FlowRecord { Direction = FlowDirection.Inbound, Status = 502 });
        Assert.False(json.TryGetProperty("request_id", out _));
        Assert.False(json.TryGetProperty("policy", out _));
        Assert.False(json.TryGetProperty("trace_id", out _));
        Assert.Equal(502, json.Number("status"));
    }

    [Theory]
    [InlineData(0.0, "0")]
    [InlineData(5.0, "5")]
    [InlineData(4.9, "4.9")]
    [InlineData(0.0306, "0.031")]
    [InlineData(12.34049, "12.34")]
    [InlineData(1234.5678, "1234.568")]
    [InlineData(-1.0, "0")]
    public void DurationsAreMillisecondsToTheMicrosecondInTheirShortestForm(double milliseconds, string expected)
    {
        var buffer = new ArrayBufferWriter<byte>();
        FlowLineEncoder.Encode(buffer, new FlowRecord { DurationMs = milliseconds }, 1, Prev);
        Assert.Contains($"\"duration_ms\":{expected},", System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/a\"b")]
    [InlineData("/back\\slash")]
    [InlineData("/line\nbreak\r\t")]
    [InlineData("/caf\u00e9/\u65e5\u672c")]
    [InlineData("/<script>&'+")]
    [InlineData("/\u0000nul")]
    [InlineData("/emoji/\ud83d\ude00")]
    public void PathsWithCharactersJsonMustEscapeStayOneValidLineAndReadBackExactly(string path)
    {
        var json = EncodeAndParse(new FlowRecord { Path = path, Method = "POST" });
        Assert.Equal(path, json.Text("path"));
        Assert.Equal("POST", json.Text("method"));
    }

    [FsCheck.Xunit.Property(MaxTest = 300)]
    public bool AnyPathReadsBackExactly(string? path)
    {
        path ??= "";
        return EncodeAndParse(new FlowRecord { Path = path }).Text("path") == path;
    }

    [Fact]
    public void ALoneSurrogateStillGivesOneValidLine()
    {
        var json = EncodeAndParse(new FlowRecord { Path = "/bad\ud800end", Method = "GET" });
        Assert.Equal("/bad\ufffdend", json.Text("path"));
    }

    [Fact]
    public void ARecordWhoseEveryFieldIsAtItsLongestStillFitsTheRoomItTakesAndReadsBack()
    {
        // The encoder takes its room once, from the strings' lengths: every string here escapes to six octets a
        // character (control characters), and every number is at its longest.
        var worst = new string('\u0001', 4_000);
        var record = new FlowRecord
        {
            Time = DateTimeOffset.MaxValue,
            DurationMs = double.MaxValue / 2,
            Direction = FlowDirection.Outbound,
            RequestId = worst,
            SourceId = worst,
            SourceAddr = worst,
            DestId = worst,
            DestService = worst,
            DestAddr = worst,
            DestPort = int.MinValue,
            Protocol = worst,
            Method = worst,
            Path = worst,
            Status = int.MinValue,
            Decision = worst,
            AuditDecision = worst,
            AuditPolicy = worst,
            AuditRule = worst,
            Policy = worst,
            Rule = worst,
            BytesIn = long.MinValue,
            BytesOut = long.MinValue,
            TraceId = worst,
            TlsVersion = worst,
        };
        var line = new ExactRoom();
        FlowLineEncoder.Encode(line, record, long.MaxValue, Prev);
        using var document = JsonDocument.Parse(line.Written);
        var json = document.RootElement;
        Assert.Equal(worst, json.Text("path"));
        Assert.Equal(worst, json.Text("tls_version"));
        Assert.Equal(long.MinValue, json.GetProperty("bytes_out").GetInt64());
        Assert.Equal(long.MaxValue, json.GetProperty("seq").GetInt64());
    }

    /// <summary>A buffer that gives exactly the room asked for, so that a line longer than the room the encoder took fails.</summary>
    private sealed class ExactRoom : IBufferWriter<byte>
    {
        private byte[] _written = [];
        private byte[] _room = [];

        public ReadOnlyMemory<byte> Written => _written;

        public Span<byte> GetSpan(int sizeHint = 0) => _room = new byte[sizeHint];

        public Memory<byte> GetMemory(int sizeHint = 0) => _room = new byte[sizeHint];

        public void Advance(int count) => _written = [.. _written, .. _room.AsSpan(0, count)];
    }
}

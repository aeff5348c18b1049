using System.Buffers;
using BenchmarkDotNet.Attributes;
using MeshGuard.Proxy.Transport;
using MeshGuard.Proxy.Transport.Http2;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace MeshGuard.Benchmarks;

/// <summary>
/// What a proxied request's header fields cost a sidecar's own server: a typical request's eight fields added as the
/// parsers add them, then the look-ups the handlers and legs make (Host, Content-Length, Connection, the request id,
/// the trace context, the mesh's protocol marker, the forgeable-field scan) and the walk that writes them on, then
/// the clear before the connection's next request. The store the servers use against ASP.NET Core's HeaderDictionary.
/// </summary>
[MemoryDiagnoser]
public class RequestFieldsBenchmarks
{
    // The names as the parsers hand them over: the HPACK table's lower-case strings.
    private static readonly (string Name, string Value)[] Request =
    [
        ("host", "orders"), ("user-agent", "frontend/1.4"), ("accept", "application/json"), ("accept-encoding", "gzip"),
        ("traceparent", "00-4031c68c40fe79dd036560f8479fea75-b7ad6b7169203331-01"), ("x-request-id", "ad4335f0c53cf782bc9806150d99a11b"),
        ("cookie", "session=abc"), ("x-tenant", "shop"),
    ];

    private readonly FieldList _fieldList = new();
    private readonly HeaderDictionary _dictionary = new();
    private readonly HpackEncoder _encoder = new();
    private readonly ArrayBufferWriter<byte> _block = new(1024);
    private readonly List<KeyValuePair<string, StringValues>> _forwarded = [];

    [GlobalSetup]
    public void Setup()
    {
        foreach (var (name, value) in Request)
        {
            _forwarded.Add(new(name, value));
        }
    }

    [Benchmark(Description = "HPACK: one request's fields onto a mesh connection (its table warm)")]
    public int EncodeFields()
    {
        _block.ResetWrittenCount();
        Http2RequestFields.Write(_encoder, _block, _forwarded);
        return _block.WrittenCount;
    }

    [Benchmark(Baseline = true, Description = "HeaderDictionary: one request's fields")]
    public int HeaderDictionary() => OneRequest(_dictionary, static (fields, name, value) => fields.Append(name, value));

    [Benchmark(Description = "FieldList: one request's fields")]
    public int FieldList() => OneRequest(_fieldList, static (fields, name, value) => fields.Append(name, value));

    // Each store's own Append (FieldList's method, HeaderDictionary's extension), as its parser calls it.
    private static int OneRequest<T>(T fields, Action<T, string, string> append) where T : IHeaderDictionary
    {
        foreach (var (name, value) in Request)
        {
            append(fields, name, value);
        }
        var seen = Use(fields);
        fields.Clear();
        return seen;
    }

    // What a hostile peer's HTTP/2 block may carry: 2,000 distinct names, each looked up once more.
    private static readonly string[] ManyNames = [.. Enumerable.Range(0, 2000).Select(i => $"x-{i:D4}")];

    [Benchmark(Description = "HeaderDictionary: a block of 2,000 fields")]
    public int HeaderDictionaryMany() => Many(_dictionary, static (fields, name) => fields.Append(name, "1"));

    [Benchmark(Description = "FieldList: a block of 2,000 fields")]
    public int FieldListMany() => Many(_fieldList, static (fields, name) => fields.Append(name, "1"));

    private static int Many<T>(T fields, Action<T, string> append) where T : IHeaderDictionary
    {
        foreach (var name in ManyNames)
        {
            append(fields, name);
        }
        var seen = 0;
        foreach (var name in ManyNames)
        {
            seen += fields.ContainsKey(name) ? 1 : 0;
        }
        fields.Clear();
        return seen;
    }

    private static int Use(IHeaderDictionary fields)
    {
        var seen = fields.Host.Count + (fields.ContentLength is null ? 0 : 1) + fields[Microsoft.Net.Http.Headers.HeaderNames.Connection].Count;
        seen += fields.TryGetValue("x-request-id", out var id) ? id.Count : 0;
        seen += fields.TryGetValue("traceparent", out var trace) ? trace.Count : 0;
        seen += fields.ContainsKey(MeshHeaders.OriginalProtocol) ? 1 : 0;
        foreach (var field in fields)
        {
            seen += MeshHeaders.IsForgeable(field.Key, ForwardedHeaders.Remove) ? 1 : field.Value.Count;
        }
        return seen;
    }
}

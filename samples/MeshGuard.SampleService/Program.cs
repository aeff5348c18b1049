using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;

// meshguard-sample --name orders --port 8080 [--address 127.0.0.1] [--outbound http://127.0.0.1:15001]
//   GET /anything        -> {"service":"orders","method":"GET","path":"/anything","x_forwarded_client_cert":"..."}
//   GET /call/payments/x[?method=POST] -> calls http://payments/x and reports what came back: through the sidecar's
//   outbound port as a proxy when --outbound is given, else straight (in a pod whose traffic the redirect rules carry)
// meshguard-sample --call http://orders:8080/orders/7 [--method POST]
//   one call, straight (in a pod the redirect carries it to the sidecar), its CallResult printed as JSON; exit 0 when
//   an HTTP answer came back, whatever its status
if (Arg("--call") is { } callUrl)
{
    using var once = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(15) };
    var result = await CallAsync(once, "sample", new Uri(callUrl), (Arg("--method") ?? "GET").ToUpperInvariant(), CancellationToken.None);
    Console.WriteLine(JsonSerializer.Serialize(result, SampleJson.Default.CallResult));
    return result.Error is null ? 0 : 1;
}

var name = Arg("--name") ?? "sample";
var port = int.Parse(Arg("--port") ?? "8080", System.Globalization.CultureInfo.InvariantCulture);
var outbound = Arg("--outbound");
var address = IPAddress.Parse(Arg("--address") ?? "127.0.0.1");

var builder = MeshGuard.Hosting.ServerBuilder.Create();
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(k => k.Listen(address, port));
var app = builder.Build();

using var client = new HttpClient(outbound is null
    ? new SocketsHttpHandler { UseProxy = false }
    : new SocketsHttpHandler { Proxy = new WebProxy(outbound), UseProxy = true })
{ Timeout = TimeSpan.FromSeconds(15) };

app.Run(async context =>
{
    var path = context.Request.Path.Value ?? "/";
    if (path.StartsWith("/call/", StringComparison.Ordinal))
    {
        var rest = path["/call/".Length..];
        var slash = rest.IndexOf('/');
        var target = slash < 0 ? rest : rest[..slash];
        var targetPath = slash < 0 ? "/" : rest[slash..];
        var method = context.Request.Query["method"].ToString() is { Length: > 0 } m ? m.ToUpperInvariant() : "GET";
        var call = await CallAsync(client, name, new Uri($"http://{target}{targetPath}"), method, context.RequestAborted);
        await context.Response.WriteAsJsonAsync(call, SampleJson.Default.CallResult);
        return;
    }
    var echo = new Echo(name, context.Request.Method, path, context.Request.Headers["x-forwarded-client-cert"].ToString(), context.Request.Host.Value ?? "");
    await context.Response.WriteAsJsonAsync(echo, SampleJson.Default.Echo);
});

Console.WriteLine($"sample {name} listening on {address}:{port}");
await app.RunAsync();
return 0;

static async Task<CallResult> CallAsync(HttpClient client, string caller, Uri target, string method, CancellationToken cancellation)
{
    var call = new CallResult(caller, target.Host, method, target.PathAndQuery, 0, null, null);
    try
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), target);
        if (method is "POST" or "PUT" or "PATCH")
        {
            request.Content = new StringContent("{}", System.Text.Encoding.UTF8, "application/json");
        }
        using var response = await client.SendAsync(request, cancellation);
        var body = await response.Content.ReadAsStringAsync(cancellation);
        return call with { Status = (int)response.StatusCode, Body = body };
    }
    catch (HttpRequestException e)
    {
        return call with { Error = e.Message };
    }
}

string? Arg(string flag)
{
    var i = Array.IndexOf(args, flag);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

internal sealed record Echo(
    [property: JsonPropertyName("service")] string Service,
    [property: JsonPropertyName("method")] string Method,
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("x_forwarded_client_cert")] string ForwardedClientCert,
    [property: JsonPropertyName("host")] string Host);

internal sealed record CallResult(
    [property: JsonPropertyName("caller")] string Caller,
    [property: JsonPropertyName("callee")] string Callee,
    [property: JsonPropertyName("method")] string Method,
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("status")] int Status,
    [property: JsonPropertyName("body")] string? Body,
    [property: JsonPropertyName("error")] string? Error);

[JsonSerializable(typeof(Echo))]
[JsonSerializable(typeof(CallResult))]
internal sealed partial class SampleJson : JsonSerializerContext;

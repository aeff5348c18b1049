// grpc-backend --port PORT: meshtest.Echo over cleartext HTTP/2 on 127.0.0.1, for loadtests/scenarios/grpc.sh.
using System.Net;
using Grpc.Core;
using MeshGuard.FunctionalTests.Grpc;
using Microsoft.AspNetCore.Server.Kestrel.Core;

var port = args.Length == 2 && args[0] == "--port" ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 50051;
var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.Services.AddGrpc();
builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, listen => listen.Protocols = HttpProtocols.Http2));
var app = builder.Build();
app.MapGrpcService<EchoService>();
await app.RunAsync();

internal sealed class EchoService : Echo.EchoBase
{
    public override Task<EchoReply> Unary(EchoRequest request, ServerCallContext context) =>
        Task.FromResult(new EchoReply { Text = request.Text });
}

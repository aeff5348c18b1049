// plain-yarp outbound --port P --upstream https://127.0.0.1:Q --cert C --key K --ca CA [--h2c-port H]
//   plain HTTP/1.1 in (and cleartext HTTP/2 on H), HTTP/2 over mTLS out, the server's certificate checked against CA.
// plain-yarp inbound --port Q --upstream http://127.0.0.1:APP --cert C --key K --ca CA
//   mTLS in (a client certificate from CA required), plain HTTP/1.1 to the app.
// --stats-port S: GET http://127.0.0.1:S/ answers the bytes allocated since start, for the bench's
//   bytes-per-request figure; a separate listener, off the forwarding path.
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Yarp.ReverseProxy.Forwarder;

var options = Options.Parse(args);
var certificate = X509Certificate2.CreateFromPemFile(options.Cert, options.Key);
// Kestrel and SslStream want a certificate whose key is usable for TLS on every platform: export once.
certificate = X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
var ca = X509CertificateLoader.LoadCertificateFromFile(options.Ca);
var inbound = options.Mode == "inbound";

bool TrustedByCa(X509Certificate2 peer)
{
    using var chain = new X509Chain();
    chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
    chain.ChainPolicy.CustomTrustStore.Add(ca);
    chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
    return chain.Build(peer);
}

var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(kestrel =>
{
    kestrel.Listen(IPAddress.Loopback, options.Port, listen =>
    {
        if (inbound)
        {
            listen.Protocols = HttpProtocols.Http1AndHttp2;
            listen.UseHttps(new HttpsConnectionAdapterOptions
            {
                ServerCertificate = certificate,
                SslProtocols = SslProtocols.Tls13,
                ClientCertificateMode = ClientCertificateMode.RequireCertificate,
                ClientCertificateValidation = (peer, _, _) => TrustedByCa(peer),
            });
        }
        else
        {
            listen.Protocols = HttpProtocols.Http1;
        }
    });
    if (options.H2cPort is { } h2c)
    {
        kestrel.Listen(IPAddress.Loopback, h2c, listen => listen.Protocols = HttpProtocols.Http2);
    }
    if (options.StatsPort is { } stats)
    {
        kestrel.Listen(IPAddress.Loopback, stats);
    }
});
builder.Services.AddHttpForwarder();
var app = builder.Build();

var handler = new SocketsHttpHandler
{
    UseProxy = false,
    AllowAutoRedirect = false,
    AutomaticDecompression = DecompressionMethods.None,
    UseCookies = false,
    EnableMultipleHttp2Connections = true,
    ConnectTimeout = TimeSpan.FromSeconds(5),
};
if (!inbound)
{
    handler.SslOptions = new SslClientAuthenticationOptions
    {
        EnabledSslProtocols = SslProtocols.Tls13,
        ClientCertificates = [certificate],
        TargetHost = "localhost",
        RemoteCertificateValidationCallback = (_, peer, _, _) => peer is X509Certificate2 c && TrustedByCa(c),
    };
}
var invoker = new HttpMessageInvoker(handler);
var config = new ForwarderRequestConfig
{
    Version = inbound ? HttpVersion.Version11 : HttpVersion.Version20,
    VersionPolicy = inbound ? HttpVersionPolicy.RequestVersionOrLower : HttpVersionPolicy.RequestVersionExact,
};
var forwarder = app.Services.GetRequiredService<IHttpForwarder>();
var upstream = options.Upstream;
if (options.StatsPort is { } statsPort)
{
    app.UseWhen(context => context.Connection.LocalPort == statsPort,
        branch => branch.Run(context => context.Response.WriteAsync(GC.GetTotalAllocatedBytes(false).ToString(System.Globalization.CultureInfo.InvariantCulture))));
}
app.Run(async context => await forwarder.SendAsync(context, upstream, invoker, config, HttpTransformer.Empty));
app.Run();

internal sealed record Options(string Mode, int Port, string Upstream, string Cert, string Key, string Ca, int? H2cPort, int? StatsPort)
{
    public static Options Parse(string[] args)
    {
        string Value(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault()
            ?? throw new ArgumentException($"missing {name}");
        if (args.Length == 0 || args[0] is not ("inbound" or "outbound"))
        {
            throw new ArgumentException("usage: plain-yarp inbound|outbound --port P --upstream URL --cert PEM --key PEM --ca PEM [--h2c-port P] [--stats-port P]");
        }
        return new Options(args[0], int.Parse(Value("--port"), System.Globalization.CultureInfo.InvariantCulture), Value("--upstream"),
            Value("--cert"), Value("--key"), Value("--ca"), OptionalPort("--h2c-port"), OptionalPort("--stats-port"));
        int? OptionalPort(string name) => args.Contains(name) ? int.Parse(Value(name), System.Globalization.CultureInfo.InvariantCulture) : null;
    }
}

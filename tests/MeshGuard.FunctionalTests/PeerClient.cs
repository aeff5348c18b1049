using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.Spiffe;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// A TLS client aimed straight at a sidecar's inbound port, presenting whatever certificate a test gives it
/// (or none). It checks the server against the mesh bundle, as a well-behaved peer would.
/// </summary>
internal static class PeerClient
{
    public sealed record Outcome(int? Status, string Body, string? Error)
    {
        public bool Refused => Status is null;
    }

    public static async Task<Outcome> GetAsync(int port, string path, TrustBundle bundle, X509Certificate2? certificate = null, X509Certificate2Collection? chain = null, IDictionary<string, string>? headers = null)
    {
        using var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            SslOptions = new SslClientAuthenticationOptions
            {
                EnabledSslProtocols = SslProtocols.Tls13,
                ClientCertificateContext = certificate is null ? null : SslStreamCertificateContext.Create(certificate, chain ?? [], offline: true),
                RemoteCertificateValidationCallback = (_, server, serverChain, _) =>
                    server is X509Certificate2 s && X509SvidVerifier.Verify(s, serverChain?.ChainPolicy.ExtraStore, bundle, DateTimeOffset.UtcNow).IsValid,
            },
        };
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"https://127.0.0.1:{port}{path}"));
        if (headers is not null)
        {
            foreach (var (name, value) in headers)
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }
        }
        try
        {
            using var response = await client.SendAsync(request);
            return new Outcome((int)response.StatusCode, await response.Content.ReadAsStringAsync(), null);
        }
        catch (HttpRequestException e)
        {
            return new Outcome(null, "", e.InnerException?.Message ?? e.Message);
        }
    }
}

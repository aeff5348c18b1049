using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.Contracts;
using MeshGuard.Spiffe;

namespace MeshGuard.FunctionalTests;

/// <summary>An HTTPS client of a control plane's bootstrap port that checks the server is the control plane of <paramref name="bundle"/>.</summary>
internal static class BootstrapClient
{
    public static HttpClient For(int bootstrapPort, TrustBundle bundle) => new(new SocketsHttpHandler
    {
        UseProxy = false,
        SslOptions = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = (_, server, chain, _) =>
                server is X509Certificate2 s && X509SvidVerifier.Verify(s, chain?.ChainPolicy.ExtraStore, bundle, DateTimeOffset.UtcNow).Id == ControlPlaneIdentity.For(bundle.TrustDomain),
        },
    })
    { BaseAddress = new Uri($"https://127.0.0.1:{bootstrapPort}") };
}

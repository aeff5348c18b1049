using System.Net.Security;
using System.Security.Cryptography;
using MeshGuard.Contracts;
using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Ca;

/// <summary>
/// The control plane's own SVID and the TLS options built from it, swapped as one immutable value when it
/// is re-issued, so that a handshake never sees a half-updated pair.
/// </summary>
internal sealed partial class ControlPlaneCredentials(CertificateAuthority ca, TimeProvider time, ILogger<ControlPlaneCredentials> logger) : BackgroundService
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromHours(24);
    private static readonly List<SslApplicationProtocol> Http11 = [SslApplicationProtocol.Http11];
    private static readonly List<SslApplicationProtocol> Http2 = [SslApplicationProtocol.Http2];

    private Snapshot? _current;

    /// <summary>The names of the control plane's Service in a cluster (manifests/ deploys it as meshguard-cp in meshguard).</summary>
    public static readonly string[] ServiceDnsNames = ["meshguard-cp.meshguard.svc", "meshguard-cp.meshguard.svc.cluster.local"];

    private sealed record Snapshot(X509Svid Svid, DateTimeOffset IssuedAt, SslServerAuthenticationOptions Bootstrap, SslServerAuthenticationOptions Grpc);

    public X509Svid Svid => Current.Svid;

    /// <summary>Bootstrap port: server-only TLS, since a joining sidecar has no SVID yet.</summary>
    public SslServerAuthenticationOptions BootstrapOptions => Current.Bootstrap;

    /// <summary>gRPC port: mutual TLS, client SVIDs from this trust domain only.</summary>
    public SslServerAuthenticationOptions GrpcOptions => Current.Grpc;

    private readonly Lock _first = new();

    private Snapshot Current => Volatile.Read(ref _current) ?? IssueFirst();

    // The first use may come from several threads at once (a handshake, the renewal loop, the start-up warm-up): one
    // SVID is issued, not one each.
    private Snapshot IssueFirst()
    {
        lock (_first)
        {
            return Volatile.Read(ref _current) ?? Issue();
        }
    }

    private Snapshot Issue()
    {
        using var key = SvidKey.CreateKey();
        var id = ControlPlaneIdentity.For(ca.TrustDomain);
        var csrPem = SvidKey.CreateSigningRequestPem(key, id);
        if (!SvidSigningRequest.TryParse(csrPem, out var csr, out var error))
        {
            throw new InvalidOperationException($"control plane CSR: {error}");
        }
        // DNS and IP SANs too, so that curl, openssl and the Kubernetes API server (which calls the injection
        // webhook at the control plane's Service name) can check the server by name.
        using var leaf = ca.IssueSvid(csr!, id, Lifetime, ["localhost", "127.0.0.1", .. ServiceDnsNames]);
        var svid = X509Svid.Create(ca.ChainPem(leaf), key, ca.Bundle, time.GetUtcNow());
        var snapshot = new Snapshot(
            svid,
            time.GetUtcNow(),
            SvidTls.CreateServerOptions(svid, ca.Bundle, time, Http11, requireClientCertificate: false),
            SvidTls.CreateServerOptions(svid, ca.Bundle, time, Http2));
        Volatile.Write(ref _current, snapshot);
        LogIssued(logger, id.ToString(), svid.NotAfter);
        return snapshot;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            // From the time of issue, not NotBefore, which the CA backdates for clock skew.
            var current = Current;
            var renewAt = current.IssuedAt + ((current.Svid.NotAfter - current.IssuedAt) * 0.7);
            var wait = renewAt - time.GetUtcNow();
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, time, stoppingToken);
            }
            Issue();
        }
    }

    [LoggerMessage(EventId = 30, Level = LogLevel.Information, Message = "control plane SVID {SpiffeId} valid until {NotAfter:o}")]
    private static partial void LogIssued(ILogger logger, string spiffeId, DateTimeOffset notAfter);
}

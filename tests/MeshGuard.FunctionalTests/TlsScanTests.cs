using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// testssl.sh, an independent scanner, against every TLS port MeshGuard opens: a sidecar's inbound port and
/// the control plane's bootstrap and gRPC ports. Protocols (-p), cipher categories (-s) and the known TLS
/// vulnerabilities (-U). Certificate trust findings (-S) are left out on purpose: they judge WebPKI rules (a
/// DNS name to match, a public root, CRL/OCSP URLs, a lifetime in months) that SPIFFE SVIDs do not follow.
/// </summary>
public sealed class TlsScanTests(TlsScanTests.Ports ports) : IClassFixture<TlsScanTests.Ports>
{
    private static readonly string[] NotOffered = ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2",
        "cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW", "cipherlist_3DES_IDEA", "cipherlist_AVERAGE"];

    private static readonly string[] Vulnerabilities = ["heartbleed", "CCS", "ROBOT", "secure_renego", "secure_client_renego", "CRIME_TLS",
        "POODLE_SSL", "fallback_SCSV", "FREAK", "DROWN", "LOGJAM", "BEAST", "LUCKY13", "RC4"];

    /// <summary>One mesh for the class: a scan only reads a port, it changes nothing.</summary>
    public sealed class Ports : IAsyncLifetime
    {
        private RecordingApp _app = null!;

        public TempDirectory Temp { get; } = new();

        public LocalMesh Mesh { get; private set; } = null!;

        public MeshService Orders { get; private set; } = null!;

        /// <summary>openssl as testssl runs it, with a mesh SVID for every handshake (see <see cref="WriteOpenSslWithSvid"/>).</summary>
        public string OpenSsl { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            MeshBinaries.Ensure();
            Mesh = new LocalMesh(Temp.Path);
            await Mesh.StartControlPlaneAsync();
            _app = await RecordingApp.StartAsync("orders");
            Orders = await Mesh.StartSidecarAsync("orders", _app.Port);
            OpenSsl = WriteOpenSslWithSvid();
        }

        /// <summary>
        /// The sidecar's inbound port and the control plane's gRPC port require a client SVID. Without one, a TLS 1.3
        /// handshake completes on openssl's side and the server's refusal follows it: whether testssl's openssl
        /// sees that alert before it exits depends on how busy the machine is, and when it does testssl reports
        /// that it cannot connect at all. So every openssl client testssl starts presents an SVID of the mesh,
        /// as a peer does; the ports that ask for no certificate are offered none.
        /// </summary>
        private string WriteOpenSslWithSvid()
        {
            var data = Mesh.Data;
            var ca = TestCa.FromFiles(LocalMesh.TrustDomain, data.RootCertificate, data.RootKey, data.IntermediateCertificate, data.IntermediateKey);
            var leaf = ca.IssueLeaf("spiffe://mesh.local/ns/shop/sa/scanner");
            var (cert, key, chain) = (Temp.Combine("scanner.pem"), Temp.Combine("scanner-key.pem"), Temp.Combine("scanner-chain.pem"));
            File.WriteAllText(cert, leaf.ExportCertificatePem());
            File.WriteAllText(key, leaf.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
            File.WriteAllText(chain, ca.Intermediate.ExportCertificatePem());
            var script = Temp.Combine("openssl-with-svid");
            File.WriteAllText(script,
                "#!/bin/sh\n" +
                $"if [ \"$1\" = s_client ]; then shift; exec openssl s_client -cert '{cert}' -key '{key}' -cert_chain '{chain}' \"$@\"; fi\n" +
                "exec openssl \"$@\"\n");
            File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            return script;
        }

        public async Task DisposeAsync()
        {
            await Mesh.DisposeAsync();
            await _app.DisposeAsync();
            Temp.Dispose();
        }
    }

    // What a scan finds is the TLS options MeshGuard.Spiffe builds (SvidTls), the same code in both sidecar builds,
    // and the control plane's ports are the same binary in both functional passes: every port is scanned once, all
    // four at the same time (a scan mostly waits on its handshakes).
    [Fact]
    [Trait("Subject", "SpiffeTls")]
    public async Task TestsslFindsOnlyTls13StrongCiphersAndNoVulnerabilityAtTheSidecarAndEveryControlPlanePort()
    {
        var controlPlane = ports.Mesh.ControlPlane!;
        (string Port, int Number)[] scanned =
        [
            ("sidecar inbound", ports.Orders.InboundPort), ("control-plane bootstrap", controlPlane.BootstrapPort),
            ("control-plane grpc", controlPlane.GrpcPort), ("control-plane webhook", controlPlane.WebhookPort),
        ];
        var findings = await Task.WhenAll(scanned.Select(p => ScanAsync(p.Number)));
        for (var i = 0; i < scanned.Length; i++)
        {
            AssertOnlyTls13StrongAndNothingVulnerable(scanned[i].Port, findings[i]);
        }
    }

    private static void AssertOnlyTls13StrongAndNothingVulnerable(string port, List<ScanFinding> findings)
    {
        Assert.Equal((port, "offered with final"), (port, Finding(findings, "TLS1_3").Text));
        foreach (var id in NotOffered)
        {
            Assert.Equal((port, id, "not offered"), (port, id, Finding(findings, id).Text));
        }
        Assert.Equal((port, "offered"), (port, Finding(findings, "cipherlist_STRONG").Text));
        foreach (var id in Vulnerabilities)
        {
            // Every vulnerability check ran and judged the port OK (INFO: not applicable to it).
            Assert.True(findings.Exists(f => f.Id == id), $"testssl did not report {id} for {port}");
        }
        var flagged = findings.Where(f => f.Severity is not ("OK" or "INFO" or "DEBUG")).Select(f => $"{f.Id} {f.Severity}: {f.Text}").ToList();
        Assert.True(flagged.Count == 0, $"testssl flagged {port}:\n" + string.Join('\n', flagged));
    }

    private sealed record ScanFinding(string Id, string Severity, string Text);

    private static ScanFinding Finding(List<ScanFinding> findings, string id) =>
        findings.FirstOrDefault(f => f.Id == id) ?? throw new Xunit.Sdk.XunitException($"testssl reported no {id}");

    private async Task<List<ScanFinding>> ScanAsync(int port)
    {
        var json = ports.Temp.Combine($"testssl-{port}.json");
        var (exit, output) = await ExternalProcess.RunAsync("testssl",
            ["--quiet", "--color", "0", "--warnings", "batch", "--openssl", ports.OpenSsl, "-p", "-s", "-U", "--jsonfile", json, $"127.0.0.1:{port}"], timeout: TimeSpan.FromSeconds(120));
        Assert.True(File.Exists(json), $"testssl wrote no findings (exit {exit}):\n{output}");
        using var document = JsonDocument.Parse(File.ReadAllText(json));
        var findings = new List<ScanFinding>();
        foreach (var entry in document.RootElement.EnumerateArray())
        {
            findings.Add(new ScanFinding(entry.GetProperty("id").GetString()!, entry.GetProperty("severity").GetString()!, entry.GetProperty("finding").GetString()!));
        }
        return findings;
    }
}

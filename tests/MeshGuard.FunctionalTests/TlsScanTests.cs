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
public sealed class TlsScanTests : IAsyncLifetime
{
    private static readonly string[] NotOffered = ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2",
        "cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW", "cipherlist_3DES_IDEA", "cipherlist_AVERAGE"];

    private static readonly string[] Vulnerabilities = ["heartbleed", "CCS", "ROBOT", "secure_renego", "secure_client_renego", "CRIME_TLS",
        "POODLE_SSL", "fallback_SCSV", "FREAK", "DROWN", "LOGJAM", "BEAST", "LUCKY13", "RC4"];

    private readonly TempDirectory _temp = new();
    private LocalMesh _mesh = null!;
    private RecordingApp _app = null!;
    private MeshService _orders = null!;

    public async Task InitializeAsync()
    {
        MeshBinaries.Ensure();
        _mesh = new LocalMesh(_temp.Path);
        await _mesh.StartControlPlaneAsync();
        _app = await RecordingApp.StartAsync("orders");
        _orders = await _mesh.StartSidecarAsync("orders", _app.Port);
    }

    public async Task DisposeAsync()
    {
        await _mesh.DisposeAsync();
        await _app.DisposeAsync();
        _temp.Dispose();
    }

    [Fact]
    public Task TestsslFindsOnlyTls13StrongCiphersAndNoVulnerabilityAtTheSidecar() => TestsslFindsOnlyTls13StrongCiphersAndNoVulnerability("sidecar inbound");

    // The control plane's ports are the same binary in both functional passes: scanned once.
    [Theory]
    [Trait("Subject", "ControlPlane")]
    [InlineData("control-plane bootstrap")]
    [InlineData("control-plane grpc")]
    [InlineData("control-plane webhook")]
    public async Task TestsslFindsOnlyTls13StrongCiphersAndNoVulnerability(string port)
    {
        var number = port switch
        {
            "sidecar inbound" => _orders.InboundPort,
            "control-plane bootstrap" => _mesh.ControlPlane!.BootstrapPort,
            "control-plane webhook" => _mesh.ControlPlane!.WebhookPort,
            _ => _mesh.ControlPlane!.GrpcPort,
        };
        var findings = await ScanAsync(number);

        Assert.Equal("offered with final", Finding(findings, "TLS1_3").Text);
        foreach (var id in NotOffered)
        {
            Assert.Equal((id, "not offered"), (id, Finding(findings, id).Text));
        }
        Assert.Equal("offered", Finding(findings, "cipherlist_STRONG").Text);
        foreach (var id in Vulnerabilities)
        {
            // Every vulnerability check ran and judged the port OK (INFO: not applicable to it).
            Assert.True(findings.Exists(f => f.Id == id), $"testssl did not report {id}");
        }
        var flagged = findings.Where(f => f.Severity is not ("OK" or "INFO" or "DEBUG")).Select(f => $"{f.Id} {f.Severity}: {f.Text}").ToList();
        Assert.True(flagged.Count == 0, $"testssl flagged {port}:\n" + string.Join('\n', flagged));
    }

    private sealed record ScanFinding(string Id, string Severity, string Text);

    private static ScanFinding Finding(List<ScanFinding> findings, string id) =>
        findings.FirstOrDefault(f => f.Id == id) ?? throw new Xunit.Sdk.XunitException($"testssl reported no {id}");

    private async Task<List<ScanFinding>> ScanAsync(int port)
    {
        var json = _temp.Combine($"testssl-{port}.json");
        var (exit, output) = await ExternalProcess.RunAsync("testssl",
            ["--quiet", "--color", "0", "--warnings", "batch", "-p", "-s", "-U", "--jsonfile", json, $"127.0.0.1:{port}"], timeout: TimeSpan.FromSeconds(120));
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

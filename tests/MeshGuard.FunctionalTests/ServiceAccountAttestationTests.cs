using System.Security.Cryptography;
using MeshGuard.Ctl.Demo;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// Service-account attestation end to end: a sidecar with no join token presents its projected token
/// (<c>--sa-token-file</c>, as the injected container does) and the control plane checks it against the
/// issuer's keys, made in the test and given as a JWKS file or served by OIDC discovery.
/// </summary>
public sealed class ServiceAccountAttestationTests : MeshTest
{
    private readonly TestTokenIssuer _issuer = new();
    private readonly TempDirectory _files = new();

    private string TokenFile(string token)
    {
        var path = _files.Combine(Guid.NewGuid().ToString("N") + ".jwt");
        File.WriteAllText(path, token);
        return path;
    }

    private async Task StartControlPlaneWithJwksFileAsync()
    {
        var jwks = _files.Combine("jwks.json");
        await File.WriteAllTextAsync(jwks, _issuer.Jwks());
        await Mesh.StartControlPlaneAsync(defaultPolicy: "allow-authenticated", extraArguments: ["--sa-issuer", _issuer.Issuer, "--sa-jwks-file", jwks]);
    }

    private Task<MeshService> StartSidecarWithTokenAsync(string token, int appPort, bool waitReady = true) =>
        Mesh.StartSidecarAsync("orders", appPort, joinToken: "", waitReady: waitReady, extraArguments: ["--sa-token-file", TokenFile(token)]);

    [Fact]
    public async Task SidecarWithAProjectedTokenAttestsAsItsServiceAccountAndServes()
    {
        await StartControlPlaneWithJwksFileAsync();
        var app = await StartAppAsync("orders");

        var orders = await StartSidecarWithTokenAsync(_issuer.Sign(_issuer.Claims(DateTimeOffset.UtcNow)), app.Port);

        Assert.Equal("spiffe://mesh.local/ns/shop/sa/orders", SidecarAdmin.Certs(orders).GetProperty("spiffe_id").GetString());
        await CallOrdersFromANewSidecarAsync("frontend", services: 2, app, "/orders/1");
    }

    /// <summary>A sidecar started now for <paramref name="caller"/> calls orders at <paramref name="path"/>, which reaches its app.</summary>
    private async Task CallOrdersFromANewSidecarAsync(string caller, int services, RecordingApp app, string path)
    {
        var sidecar = await Mesh.StartSidecarAsync(caller, (await StartAppAsync(caller)).Port);
        await SidecarAdmin.WaitForServicesAsync(sidecar, services);
        using var client = SidecarAdmin.ThroughOutbound(sidecar);
        using var response = await client.GetAsync(new Uri("http://orders" + path));
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(app.Requests, r => r.Path == path);
    }

    /// <summary>
    /// The control plane is away for longer than the SVIDs' last quarter of life, so both expire: an expired SVID can
    /// authenticate no renewal. The sidecar with a service-account token attests again by itself once the control plane
    /// is back and serves; the one whose join token was spent says, once, that it needs a new one, and stays not ready.
    /// </summary>
    [Fact]
    public async Task AnSvidThatExpiredWhileTheControlPlaneWasAwayIsReplacedByAttestingAgainWithTheToken()
    {
        var jwks = _files.Combine("jwks.json");
        await File.WriteAllTextAsync(jwks, _issuer.Jwks());
        string[] issuer = ["--sa-issuer", _issuer.Issuer, "--sa-jwks-file", jwks];
        var ttl = TimeSpan.FromSeconds(5);
        var cp = await Mesh.StartControlPlaneAsync(svidTtl: ttl, defaultPolicy: "allow-authenticated", extraArguments: issuer);
        var app = await StartAppAsync("orders");
        var orders = await StartSidecarWithTokenAsync(_issuer.Sign(_issuer.Claims(DateTimeOffset.UtcNow)), app.Port);
        var frontend = await Mesh.StartSidecarAsync("frontend", (await StartAppAsync("frontend")).Port);

        foreach (var process in Mesh.Processes.Where(p => p.Name == "control-plane" && !p.HasExited))
        {
            Assert.True(await process.StopAsync(TimeSpan.FromSeconds(10)));
        }
        var expiredSerial = SidecarAdmin.SvidSerial(orders);
        var frontendSerial = SidecarAdmin.SvidSerial(frontend);
        // Both SVIDs must have expired before the control plane is back: frontend's was issued a moment after orders',
        // and a control plane back before it ran out renewed it, so frontend never had to attest again.
        var expiry = SidecarAdmin.Certs(orders).GetProperty("not_after").GetDateTimeOffset();
        var frontendExpiry = SidecarAdmin.Certs(frontend).GetProperty("not_after").GetDateTimeOffset();
        var lastExpiry = expiry > frontendExpiry ? expiry : frontendExpiry;
        Assert.True(await Eventually.TrueAsync(() => SidecarAdmin.SvidSerial(orders) == expiredSerial && SidecarAdmin.SvidSerial(frontend) == frontendSerial
            && DateTimeOffset.UtcNow > lastExpiry.AddSeconds(1), ttl * 3),
            "an SVID was renewed with the control plane stopped");
        await Mesh.StartControlPlaneAsync(svidTtl: TimeSpan.FromMinutes(10), defaultPolicy: "allow-authenticated", extraArguments: issuer,
            ports: [cp.BootstrapPort, cp.GrpcPort, cp.AdminPort, cp.WebhookPort]);

        Assert.True(await Eventually.TrueAsync(() => SidecarAdmin.SvidSerial(orders) != expiredSerial, TimeSpan.FromSeconds(30)), orders.Sidecar!.ReadLog());
        Assert.True(SidecarAdmin.Certs(orders).GetProperty("not_after").GetDateTimeOffset() > DateTimeOffset.UtcNow.AddMinutes(5));
        // The output pump may write the line to the log a moment after the new SVID shows on the admin port.
        Assert.True(await Eventually.TrueAsync(() => orders.Sidecar!.ReadLog().Contains("attested again with the service-account token", StringComparison.Ordinal), TimeSpan.FromSeconds(10)),
            orders.Sidecar!.ReadLog());
        Assert.True(await Eventually.TrueAsync(() => frontend.Sidecar!.ReadLog().Contains("a join token attests only once", StringComparison.Ordinal), TimeSpan.FromSeconds(30)),
            frontend.Sidecar!.ReadLog());

        await CallOrdersFromANewSidecarAsync("checkout", services: 3, app, "/after-expiry");
        using var admin = new HttpClient();
        using var ready = await admin.GetAsync(new Uri($"http://127.0.0.1:{frontend.AdminPort}/ready"));
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(frontend.Sidecar!.ReadLog(), "a join token attests only once"));
    }

    [Fact]
    public async Task TokensForAnotherAudienceExpiredOrSignedByAnUnknownKeyAreRefused()
    {
        await StartControlPlaneWithJwksFileAsync();
        var app = await StartAppAsync("orders");
        var now = DateTimeOffset.UtcNow;
        using var stranger = RSA.Create(2048);
        var cases = new (string Token, string Reason)[]
        {
            (_issuer.Sign(_issuer.Claims(now, audience: "https://kubernetes.default.svc")), "audience"),
            (_issuer.Sign(_issuer.Claims(now - TimeSpan.FromHours(2), expiresIn: TimeSpan.FromHours(1))), "expired"),
            (TestTokenIssuer.Sign(_issuer.Claims(now), "RS256", "rsa-1", stranger), "does not verify"),
        };
        foreach (var (token, reason) in cases)
        {
            var sidecar = await StartSidecarWithTokenAsync(token, app.Port, waitReady: false);
            Assert.True(await Eventually.TrueAsync(() => sidecar.Sidecar!.HasExited, TimeSpan.FromSeconds(30)), $"a sidecar with a bad token ({reason}) kept running");
            Assert.Equal(1, sidecar.Sidecar!.ExitCode);
            // The output pump may write the last lines to the log a moment after the process has exited.
            Assert.True(await Eventually.TrueAsync(() => sidecar.Sidecar.ReadLog().Contains("service-account token refused", StringComparison.Ordinal)),
                sidecar.Sidecar.ReadLog());
            Assert.Contains(reason, sidecar.Sidecar.ReadLog(), StringComparison.Ordinal);
        }
        Assert.Empty(app.Requests);
    }

    [Fact]
    public async Task IssuerKeysFoundByOidcDiscoveryVerifyTokens()
    {
        var discovery = await _issuer.ServeDiscoveryAsync();
        await Mesh.StartControlPlaneAsync(defaultPolicy: "allow-authenticated", extraArguments: ["--sa-issuer", _issuer.Issuer, "--sa-oidc-discovery", discovery.ToString()]);
        var app = await StartAppAsync("orders");

        var orders = await StartSidecarWithTokenAsync(
            TestTokenIssuer.Sign(_issuer.Claims(DateTimeOffset.UtcNow, subject: "system:serviceaccount:shop:orders"), "ES256", "ec-1", _issuer.Ec), app.Port);

        Assert.Equal("spiffe://mesh.local/ns/shop/sa/orders", SidecarAdmin.Certs(orders).GetProperty("spiffe_id").GetString());
    }

    [Fact]
    public async Task ControlPlaneRefusesToStartOnTheDiscoveryDocumentOfAnotherIssuer()
    {
        var discovery = await _issuer.ServeDiscoveryAsync(documentIssuer: "https://evil.example");
        var ports = LocalMesh.FreePorts(4);

        var (exit, output) = await Cli.RunAsync("meshguard-cp", "--data", _files.Combine("cp"), "--bootstrap-port", $"{ports[0]}", "--grpc-port", $"{ports[1]}",
            "--admin-port", $"{ports[2]}", "--webhook-port", $"{ports[3]}", "--sa-issuer", _issuer.Issuer, "--sa-oidc-discovery", discovery.ToString());

        Assert.Equal(1, exit);
        Assert.Contains("'https://evil.example', not 'https://kubernetes.default.svc.cluster.local'", output, StringComparison.Ordinal);
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await _issuer.DisposeAsync();
        _files.Dispose();
    }
}

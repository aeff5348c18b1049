using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Grpc.Net.Client;
using MeshGuard.Ctl.Demo;
using MeshGuard.Spiffe;
using MeshGuard.Tests.Common;

namespace MeshGuard.FunctionalTests;

/// <summary>
/// One mesh shared by a test class: a control plane, and "frontend" and "orders" sidecars in front of
/// recording apps in this test process, so tests can see exactly what reached each app.
/// </summary>
public sealed class MeshFixture : IAsyncLifetime
{
    private readonly TempDirectory _temp = new();

    public LocalMesh Mesh { get; private set; } = null!;

    public RecordingApp FrontendApp { get; private set; } = null!;

    public RecordingApp OrdersApp { get; private set; } = null!;

    public MeshService Frontend { get; private set; } = null!;

    public MeshService Orders { get; private set; } = null!;

    /// <summary>The control plane's real CA, read from its data directory, to mint test SVIDs it really signed.</summary>
    public TestCa RealCa { get; private set; } = null!;

    public TrustBundle Bundle { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        MeshBinaries.Ensure();
        Mesh = new LocalMesh(_temp.Path);
        // These tests are about identity, not policy: every authenticated caller is let in.
        await Mesh.StartControlPlaneAsync(defaultPolicy: "allow-authenticated");
        var data = Mesh.Data;
        RealCa = TestCa.FromFiles(LocalMesh.TrustDomain, data.RootCertificate, data.RootKey, data.IntermediateCertificate, data.IntermediateKey);
        Bundle = TrustBundle.Load(data.TrustBundle);
        FrontendApp = await RecordingApp.StartAsync("frontend");
        OrdersApp = await RecordingApp.StartAsync("orders");
        Orders = await Mesh.StartSidecarAsync("orders", OrdersApp.Port);
        Frontend = await Mesh.StartSidecarAsync("frontend", FrontendApp.Port);
        // Both sidecars must know both services before tests call across.
        await SidecarAdmin.WaitForServicesAsync(Frontend, 2);
    }

    /// <summary>A channel to the control plane's gRPC port that presents <paramref name="svid"/>, as a sidecar does.</summary>
    public GrpcChannel ControlPlaneChannel(X509Certificate2 svid) =>
        GrpcChannel.ForAddress($"https://127.0.0.1:{Mesh.ControlPlane!.GrpcPort}", new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                SslOptions = new SslClientAuthenticationOptions
                {
                    ClientCertificateContext = SslStreamCertificateContext.Create(svid, RealCa.Intermediates, offline: true),
                    RemoteCertificateValidationCallback = (_, server, chain, _) =>
                        server is X509Certificate2 s && X509SvidVerifier.Verify(s, chain?.ChainPolicy.ExtraStore, Bundle, DateTimeOffset.UtcNow).IsValid,
                },
            },
        });

    public async Task DisposeAsync()
    {
        await Mesh.DisposeAsync();
        await FrontendApp.DisposeAsync();
        await OrdersApp.DisposeAsync();
        _temp.Dispose();
    }
}

using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using MeshGuard.ControlPlane.Review;
using MeshGuard.ControlPlane.State;
using MeshGuard.Spiffe;
using Microsoft.Extensions.Time.Testing;

namespace MeshGuard.ControlPlane.Tests.Review;

public sealed class WorkloadStatusTests
{
    private static readonly SpiffeId Orders = SpiffeId.Parse("spiffe://mesh.local/ns/shop/sa/orders");

    [Fact]
    public void ASidecarShowsItsLastSvidAndWhetherItsStreamsAreOpenAndWhatTheyWereSent()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var status = new WorkloadStatus(time);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var svid = new CertificateRequest("CN=orders", key, HashAlgorithmName.SHA256).CreateSelfSigned(time.GetUtcNow(), time.GetUtcNow().AddHours(1));

        status.StreamOpened(Orders);
        status.SvidIssued(Orders, svid);
        status.Sent(Orders, 42);
        status.StreamOpened(Orders); // a second stream while the first winds down
        status.StreamClosed(Orders);

        var (id, sidecar) = Assert.Single(status.All());
        Assert.Equal(Orders.ToString(), id);
        Assert.Equal(svid.SerialNumber, sidecar.SvidSerial);
        Assert.Equal(svid.NotAfter.ToUniversalTime(), sidecar.SvidNotAfter);
        Assert.Equal(1, sidecar.OpenStreams);
        Assert.Equal(42, sidecar.SentVersion);
        Assert.Equal(time.GetUtcNow(), sidecar.LastSent);

        status.StreamClosed(Orders);
        status.StreamClosed(Orders);
        Assert.Equal(0, Assert.Single(status.All()).Value.OpenStreams);
    }
}

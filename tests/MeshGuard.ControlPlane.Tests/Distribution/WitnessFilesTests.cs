using System.Text;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Distribution;
using MeshGuard.Tests.Common;

namespace MeshGuard.ControlPlane.Tests.Distribution;

/// <summary>The witness keeps each workload's newest signed record in its data directory and never goes back to an older one.</summary>
public sealed class WitnessFilesTests : IDisposable
{
    private const string Orders = TestFlowLog.Orders;
    private const string Checkout = "spiffe://mesh.local/ns/shop/sa/checkout";
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static ReadOnlyMemory<byte> Record(long seq, string workload) =>
        Encoding.UTF8.GetBytes($$"""{"kind":"checkpoint","workload":"{{workload}}","seq":{{seq}}}""");

    [Fact]
    public async Task TheNewestRecordIsKeptPerWorkloadAndAnOlderOneNeverReplacesIt()
    {
        var data = new DataDirectory(_temp.Path);
        var witness = new WitnessFiles(data);
        Assert.Equal(1000, await witness.KeepAsync(Orders, Record(1000, Orders), 1000, default));
        Assert.Equal(2000, await witness.KeepAsync(Orders, Record(2000, Orders), 2000, default));
        Assert.Equal(5, await witness.KeepAsync(Checkout, Record(5, Checkout), 5, default));
        // An older or equal record: the kept one's seq comes back and the file is untouched.
        Assert.Equal(2000, await witness.KeepAsync(Orders, Record(1500, Orders), 1500, default));
        Assert.Equal(2000, await witness.KeepAsync(Orders, Record(2000, Orders), 2000, default));
        Assert.Contains("\"seq\":2000", File.ReadAllText(data.WitnessFile(Orders)), StringComparison.Ordinal);
        Assert.Contains("\"seq\":5", File.ReadAllText(data.WitnessFile(Checkout)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AControlPlaneStartedAgainGoesOnFromTheRecordItsDirectoryHolds()
    {
        var data = new DataDirectory(_temp.Path);
        await new WitnessFiles(data).KeepAsync(Orders, Record(3000, Orders), 3000, default);
        var restarted = new WitnessFiles(data);
        Assert.Equal(3000, await restarted.KeepAsync(Orders, Record(2999, Orders), 2999, default));
        Assert.Contains("\"seq\":3000", File.ReadAllText(data.WitnessFile(Orders)), StringComparison.Ordinal);
        Assert.Equal(3001, await restarted.KeepAsync(Orders, Record(3001, Orders), 3001, default));
        Assert.Contains("\"seq\":3001", File.ReadAllText(data.WitnessFile(Orders)), StringComparison.Ordinal);
    }
}

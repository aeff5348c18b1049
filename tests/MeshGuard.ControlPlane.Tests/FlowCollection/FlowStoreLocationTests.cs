using MeshGuard.FlowStore;

namespace MeshGuard.ControlPlane.Tests.FlowCollection;

/// <summary>The <c>--flow-store</c> URL: read into a connection, written back without its password, refused with a reason.</summary>
public sealed class FlowStoreLocationTests
{
    [Fact]
    public void APostgresUrlBecomesAConnectionAndIsShownWithoutItsPassword()
    {
        var location = FlowStoreLocation.Parse("postgres://mesh%40guard:s3cr%2Ft@db.internal:6543/flows?sslmode=require", out var error);
        Assert.Equal("", error);
        var connection = location!.Connection;
        Assert.Equal(("db.internal", 6543, "flows", "mesh@guard", "s3cr/t", Npgsql.SslMode.Require),
            (connection.Host, connection.Port, connection.Database, connection.Username, connection.Password, connection.SslMode));
        Assert.Equal("postgres://mesh%40guard:***@db.internal:6543/flows?sslmode=require", location.Display);
        Assert.DoesNotContain("s3cr", location.ToString(), StringComparison.Ordinal);
        Assert.Equal(5432, FlowStoreLocation.Parse("postgresql://u@127.0.0.1/flows", out _)!.Connection.Port);
    }

    [Theory]
    [InlineData("etcd:http://127.0.0.1:2379", "expected postgres://")]
    [InlineData("postgres://u:pw@127.0.0.1:5432/", "one database name")]
    [InlineData("postgres://u:pw@127.0.0.1:5432/flows?search_path=x", "unknown or bad option 'search_path'")]
    [InlineData("postgres://u:pw@127.0.0.1:5432/flows?sslmode=sometimes", "unknown or bad option 'sslmode'")]
    public void ABadUrlIsRefusedWithTheReasonAndNeverItsPassword(string text, string reason)
    {
        Assert.Null(FlowStoreLocation.Parse(text, out var error));
        Assert.Contains(reason, error, StringComparison.Ordinal);
        Assert.DoesNotContain(":pw@", error, StringComparison.Ordinal);
    }
}

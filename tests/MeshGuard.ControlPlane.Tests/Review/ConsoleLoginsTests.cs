using MeshGuard.Contracts;
using MeshGuard.ControlPlane.Common.DataDir;
using MeshGuard.ControlPlane.Review;
using MeshGuard.Tests.Common;
using Microsoft.Extensions.Time.Testing;

namespace MeshGuard.ControlPlane.Tests.Review;

public sealed class ConsoleLoginsTests
{
    [Fact]
    public void ALoginIsSpentOnceWithinItsMinuteAndOnlyItsHashIsStored()
    {
        using var directory = new TempDirectory();
        var data = new DataDirectory(directory.Path);
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var logins = new ConsoleLogins(data, time);
        var token = logins.Create();
        var stored = Assert.Single(Directory.GetFiles(data.ConsoleLoginsDirectory));
        Assert.DoesNotContain(token, Path.GetFileName(stored), StringComparison.Ordinal);
        Assert.Equal(SecureFile.OwnerOnly, File.GetUnixFileMode(stored));

        Assert.False(logins.TrySpend(token + "x"));
        Assert.True(logins.TrySpend(token));
        Assert.False(logins.TrySpend(token));
        Assert.Empty(Directory.GetFiles(data.ConsoleLoginsDirectory));

        var late = logins.Create();
        time.Advance(ConsoleLogins.Lifetime);
        Assert.False(logins.TrySpend(late));
    }

    [Fact]
    public void ASessionLastsEightHoursAndAnUnknownValueIsNoSession()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var sessions = new ConsoleSessions(time);
        var session = sessions.Open();
        Assert.True(sessions.IsValid(session));
        Assert.False(sessions.IsValid(session[..^1]));
        Assert.False(sessions.IsValid(null));
        time.Advance(ConsoleSessions.Lifetime - TimeSpan.FromSeconds(1));
        Assert.True(sessions.IsValid(session));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(sessions.IsValid(session));
    }
}

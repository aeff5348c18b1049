namespace MeshGuard.Tests.Common;

/// <summary>Waits for something another task or process does, failing the test with what was awaited when it does not come.</summary>
public static class Poll
{
    public static async Task UntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (!condition())
        {
            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException("timed out waiting for " + what);
            }
            await Task.Delay(20);
        }
    }
}

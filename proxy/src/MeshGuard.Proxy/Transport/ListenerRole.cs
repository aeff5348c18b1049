namespace MeshGuard.Proxy.Transport;

/// <summary>Which of the sidecar's listeners accepted a connection; set once per connection.</summary>
internal sealed class ListenerRole
{
    public static readonly ListenerRole Inbound = new();
    public static readonly ListenerRole Outbound = new();

    private ListenerRole()
    {
    }
}

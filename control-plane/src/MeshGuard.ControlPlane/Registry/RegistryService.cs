using Grpc.Core;
using MeshGuard.Contracts.V1;

namespace MeshGuard.ControlPlane.Registry;

/// <summary>Streams the service table to sidecars: the current one at once, then each newer one.</summary>
internal sealed class RegistryService(ServiceRegistry registry) : Contracts.V1.Registry.RegistryBase
{
    public override async Task WatchServices(WatchServicesRequest request, IServerStreamWriter<ServiceTable> responseStream, ServerCallContext context)
    {
        var known = request.KnownVersion;
        var cancellation = context.CancellationToken;
        while (!cancellation.IsCancellationRequested)
        {
            // Take the change signal before the table so that no change can slip between the two reads.
            var changed = registry.Changed;
            var table = registry.Current;
            if (table.Version > known)
            {
                await responseStream.WriteAsync(table, cancellation);
                known = table.Version;
            }
            await changed.WaitAsync(cancellation);
        }
    }
}

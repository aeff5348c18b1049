using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Registry;

/// <summary>Where attestation and renewal record which identity serves a service at an address.</summary>
internal interface IEndpointRegistrar
{
    Task RegisterAsync(string service, SpiffeId id, string address, CancellationToken cancellation);
}

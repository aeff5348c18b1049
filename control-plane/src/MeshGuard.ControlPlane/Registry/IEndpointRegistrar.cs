using MeshGuard.Spiffe;

namespace MeshGuard.ControlPlane.Registry;

/// <summary>Where attestation and renewal record which identity serves a service at an address.</summary>
internal interface IEndpointRegistrar
{
    /// <summary>Whether the claim would be taken now (secure naming): null, or why not. Asked before a join token is spent.</summary>
    string? Check(string service, SpiffeId id, string address);

    /// <summary>Records the claim if secure naming takes it; returns null, or why it was refused (nothing recorded).</summary>
    Task<string?> RegisterAsync(string service, SpiffeId id, string address, CancellationToken cancellation);
}
